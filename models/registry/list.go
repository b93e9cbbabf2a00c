package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/accordmesh/accord/models"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// Versions lists the semantic-version tags of name, ascending; other tags
// (such as referrers-fallback tags) are skipped. An unknown name is
// ErrNotFound.
func (c *Client) Versions(ctx context.Context, name string) ([]models.Version, error) {
	repo, err := c.repo(name)
	if err != nil {
		return nil, fmt.Errorf("registry: versions of %s: %w", clip(name), err)
	}
	vs, err := c.versions(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("registry: versions of %s: %w", name, err)
	}
	return vs, nil
}

func (c *Client) versions(ctx context.Context, repo *remote.Repository) ([]models.Version, error) {
	var vs []models.Version
	n := 0
	err := repo.Tags(ctx, "", func(tags []string) error {
		for _, t := range tags {
			if n++; n > maxNames {
				return fmt.Errorf("%w: more than %d tags", ErrInvalid, maxNames)
			}
			if v, err := models.ParseVersion(t); err == nil {
				vs = append(vs, v)
			}
		}
		return nil
	})
	if err != nil {
		return nil, unknownName(err)
	}
	slices.SortFunc(vs, models.Version.Compare)
	return slices.CompactFunc(vs, func(a, b models.Version) bool { return a == b }), nil
}

// unknownName maps the registry's 404 for a repository onto ErrNotFound.
func unknownName(err error) error {
	var er *errcode.ErrorResponse
	if errors.As(err, &er) && er.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return notFound(err)
}

// Resolve picks the highest version of name matching constraint
// (models.ParseConstraint syntax) and returns it with its OCI manifest
// digest.
func (c *Client) Resolve(ctx context.Context, name, constraint string) (version, dgst string, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("registry: resolve %s %s: %w", clip(name), clip(constraint), err)
		}
	}()
	con, err := models.ParseConstraint(constraint)
	if err != nil {
		return "", "", err
	}
	repo, err := c.repo(name)
	if err != nil {
		return "", "", err
	}
	vs, err := c.versions(ctx, repo)
	if err != nil {
		return "", "", err
	}
	best, ok := con.Best(vs)
	if !ok {
		return "", "", fmt.Errorf("%w: no version matches", ErrNotFound)
	}
	desc, err := repo.Resolve(ctx, best.String())
	if err != nil {
		return "", "", notFound(err)
	}
	if err := checkDigest(desc.Digest); err != nil {
		return "", "", err
	}
	return best.String(), desc.Digest.String(), nil
}

// Names lists the model names in the registry (its _catalog), under the
// client's prefix, sorted; repositories whose name is not a model name are
// skipped.
func (c *Client) Names(ctx context.Context) ([]string, error) {
	reg := &remote.Registry{RepositoryListPageSize: 1000}
	reg.Client = c.http
	reg.Reference.Registry = c.host
	reg.PlainHTTP = c.opts.PlainHTTP
	reg.MaxMetadataBytes = c.opts.MaxManifestBytes
	var names []string
	pages, seen := 0, 0
	err := reg.Repositories(ctx, "", func(repos []string) error {
		if pages++; pages > maxListPages*10 {
			return fmt.Errorf("%w: more than %d catalog pages", ErrInvalid, maxListPages*10)
		}
		for _, r := range repos {
			if seen++; seen > maxNames {
				return fmt.Errorf("%w: more than %d repositories", ErrInvalid, maxNames)
			}
			if n, ok := c.modelName(r); ok {
				names = append(names, n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("registry: list names: %w", err)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// modelName maps a repository to a model name under the prefix.
func (c *Client) modelName(repo string) (string, bool) {
	name := repo
	if c.prefix != "" {
		var ok bool
		if name, ok = strings.CutPrefix(repo, c.prefix+"/"); !ok {
			return "", false
		}
	}
	return name, models.CheckName(name) == nil
}
