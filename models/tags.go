package models

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// TagKeys is the semantic tag vocabulary: each key and the check its value
// must pass. A tag is written "key:value" (task:sentiment-analysis, lang:es,
// domain:legal, license:open-weights, modality:text, framework:pytorch).
// docs/models.md lists the same vocabulary.
var TagKeys = map[string]func(string) error{
	"task":      oneOf("task", TagTasks),
	"lang":      checkLang,
	"domain":    checkSlug,
	"license":   oneOf("license", TagLicenses),
	"modality":  oneOf("modality", TagModalities),
	"framework": oneOf("framework", TagFrameworks),
}

// TagTasks are the task values: Hugging Face's pipeline tags, plus
// sentiment-analysis, which people search for by that name.
var TagTasks = []string{
	"audio-classification", "automatic-speech-recognition", "feature-extraction",
	"fill-mask", "image-classification", "image-segmentation", "image-to-text",
	"object-detection", "question-answering", "sentence-similarity",
	"sentiment-analysis", "summarization", "table-question-answering",
	"text-classification", "text-generation", "text-to-image", "text-to-speech",
	"token-classification", "translation", "zero-shot-classification",
}

// TagLicenses are the usage classes of license: tags. They say what a user
// may do in one word; the precise terms are the manifest's SPDX licence.
var TagLicenses = []string{"open-weights", "open-source", "research-only", "commercial", "proprietary"}

// TagModalities are ModelPack's modalities, so modality: tags map onto its
// capabilities without translation.
var TagModalities = []string{"text", "image", "audio", "video", "embedding", "other"}

// TagFrameworks are the frameworks a model is built for.
var TagFrameworks = []string{
	"pytorch", "tensorflow", "jax", "onnx", "transformers", "gguf", "sklearn", "xgboost",
}

var (
	// langRE is BCP-47-ish: a 2-3 letter language, an optional 4-letter
	// script and an optional 2-letter or 3-digit region (es, es-419,
	// zh-Hant-TW, pt-BR).
	langRE = regexp.MustCompile(`^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$`)
	// slugRE is a free-form lowercase value such as a domain.
	slugRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)
)

func oneOf(key string, values []string) func(string) error {
	return func(v string) error {
		for _, w := range values {
			if v == w {
				return nil
			}
		}
		return fmt.Errorf("%q is not a known %s (want one of %s)", clip(v), key, strings.Join(values, ", "))
	}
}

func checkLang(v string) error {
	if !langRE.MatchString(v) {
		return fmt.Errorf("%q is not a language tag like es, pt-BR or zh-Hant-TW", clip(v))
	}
	return nil
}

func checkSlug(v string) error {
	if !slugRE.MatchString(v) {
		return fmt.Errorf("%q is not 1-40 lowercase letters, digits and inner hyphens", clip(v))
	}
	return nil
}

// ParseTag splits "key:value" and checks it against the vocabulary.
func ParseTag(s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", fmt.Errorf("%q is not key:value", clip(s))
	}
	check, known := TagKeys[key]
	if !known {
		return "", "", fmt.Errorf("unknown tag key %q (want one of %s)", clip(key), strings.Join(tagKeyNames(), ", "))
	}
	if err := check(value); err != nil {
		return "", "", err
	}
	return key, value, nil
}

func tagKeyNames() []string {
	ks := make([]string, 0, len(TagKeys))
	for k := range TagKeys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
