package nomad

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/nomad/api"

	"github.com/accordmesh/accord/internal/bounded"
	"github.com/accordmesh/accord/runtimes"
)

// Job meta keys through which a job remembers the task it runs; a re-attach
// checks them so that an ID collision is refused rather than adopted.
const (
	MetaTaskID      = "accord_task_id"
	MetaSpecDigest  = "accord_spec_digest"
	MetaMaxDuration = "accord_max_duration"
	MetaMilliCPU    = "accord_millicpu"
	MetaMemoryBytes = "accord_memory_bytes"
	MetaGPUs        = "accord_gpus"
	MetaOutputs     = "accord_outputs" // JSON list of declared output paths

	groupName = "accord"
	// allocOutDir is where outputs live inside the allocation directory,
	// readable through the fs API after the task ends.
	allocOutDir = "alloc/data/out"
	// maxInputBytes bounds inputs embedded into the job as templates.
	maxInputBytes = 4 << 20
	// templateDelim is a delimiter no input contains, so that Nomad's
	// template engine copies inputs verbatim.
	templateDelim = "\x01accord-verbatim\x01"
)

var safeID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)

// JobID is the Nomad job ID for a task ID: "accord-" + the ID when it is
// short and plain, else "accord-" + a digest of it. The same task ID always
// gives the same job ID; that is what lets a retried Start re-attach.
func JobID(taskID string) string {
	if safeID.MatchString(taskID) {
		return "accord-" + taskID
	}
	sum := sha256.Sum256([]byte(taskID))
	return "accord-" + hex.EncodeToString(sum[:16])
}

// specDigest fingerprints everything the job is built from.
func specDigest(cfg Config, spec runtimes.TaskSpec) string {
	b, _ := json.Marshal(struct {
		Spec     runtimes.TaskSpec
		Driver   string
		Pool     string
		DCs      []string
		Attempts int
	}{spec, cfg.Driver, cfg.NodePool, cfg.Datacenters, cfg.RescheduleAttempts})
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// BuildJob turns a task into a Nomad batch job. pinNode, when set, constrains
// the job to that node (the node holding the GPUs granted at placement).
func BuildJob(cfg Config, spec runtimes.TaskSpec, pinNode string) (*api.Job, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if spec.ID == "" {
		return nil, fmt.Errorf("%w: empty task ID", runtimes.ErrInvalid)
	}
	if spec.Image == "" && cfg.Driver == "docker" {
		return nil, fmt.Errorf("%w: task %s: the docker driver needs an image", runtimes.ErrInvalid, spec.ID)
	}
	if cfg.Driver == "exec" && len(spec.Command) == 0 {
		return nil, fmt.Errorf("%w: task %s: the exec driver needs a command", runtimes.ErrInvalid, spec.ID)
	}
	var archive *archiveImage
	if p, ok := strings.CutPrefix(spec.Image, ArchivePrefix); ok {
		if cfg.ArtifactBase == "" || cfg.Driver != "docker" {
			return nil, fmt.Errorf("%w: %s: Nomad nodes cannot read the worker's files; set the pool's artifact_base (docker driver) or push the image to a registry", runtimes.ErrImage, spec.Image)
		}
		a, err := readArchive(p)
		if err != nil {
			return nil, err
		}
		archive = &a
	}
	r := spec.Resources
	if r.MilliCPU < 0 || r.MemoryBytes < 0 || r.DiskBytes < 0 || r.GPUs < 0 || r.GPUMemBytes < 0 || r.MaxDuration < 0 {
		return nil, fmt.Errorf("%w: task %s: negative resource", runtimes.ErrInvalid, spec.ID)
	}
	id := JobID(spec.ID)
	outDir := spec.OutputDir
	if outDir == "" {
		outDir = DefaultOutputDir
	}
	if !path.IsAbs(outDir) {
		return nil, fmt.Errorf("%w: task %s: output dir %q is not absolute", runtimes.ErrInvalid, spec.ID, outDir)
	}

	job := api.NewBatchJob(id, id, cfg.Region, 50)
	if cfg.Region == "" {
		job.Region = nil
	}
	job.Namespace = &cfg.Namespace
	job.Datacenters = cfg.Datacenters
	if len(job.Datacenters) == 0 {
		job.Datacenters = []string{"*"}
	}
	if cfg.NodePool != "" {
		job.NodePool = &cfg.NodePool
	}
	job.Meta = map[string]string{
		MetaTaskID:      spec.ID,
		MetaSpecDigest:  specDigest(cfg, spec),
		MetaMilliCPU:    fmt.Sprint(r.MilliCPU),
		MetaMemoryBytes: fmt.Sprint(r.MemoryBytes),
		MetaGPUs:        fmt.Sprint(r.GPUs),
	}
	if r.MaxDuration > 0 {
		job.Meta[MetaMaxDuration] = r.MaxDuration.String()
	}
	if len(spec.Outputs) > 0 {
		clean := make([]string, 0, len(spec.Outputs))
		for _, o := range spec.Outputs {
			c, err := cleanOutput(o)
			if err != nil {
				return nil, err
			}
			clean = append(clean, c)
		}
		b, _ := json.Marshal(clean)
		job.Meta[MetaOutputs] = string(b)
	}
	for k, v := range spec.Labels {
		job.Meta["label_"+k] = v
	}
	if pinNode != "" {
		job.Constrain(api.NewConstraint("${node.unique.id}", "=", pinNode))
	}

	tg := api.NewTaskGroup(groupName, 1)
	zero, fail := 0, "fail"
	tg.RestartPolicy = &api.RestartPolicy{Attempts: &zero, Mode: &fail}
	attempts, interval, delay, fn, unlimited := cfg.RescheduleAttempts, 24*time.Hour, 5*time.Second, "constant", false
	tg.ReschedulePolicy = &api.ReschedulePolicy{Attempts: &attempts, Interval: &interval, Delay: &delay, DelayFunction: &fn, Unlimited: &unlimited}
	if r.MaxDuration > 0 {
		d := r.MaxDuration
		tg.MaxRunDuration = &d
	}
	if r.DiskBytes > 0 {
		mb := int(memoryMB(r.DiskBytes))
		tg.EphemeralDisk = &api.EphemeralDisk{SizeMB: &mb}
	}

	task := api.NewTask(DefaultTaskName, cfg.Driver)
	kill := cfg.KillTimeout
	task.KillTimeout = &kill
	task.Env = map[string]string{}
	for k, v := range spec.Env {
		task.Env[k] = v
	}
	task.Env["ACCORD_TASK_ID"] = spec.ID
	switch cfg.Driver {
	case "docker":
		task.Env["ACCORD_OUTPUT_DIR"] = outDir
		conf := map[string]any{
			"image":  spec.Image,
			"labels": map[string]string{"accord.task_id": spec.ID},
			// A path relative to the task directory stays inside the
			// allocation, which Nomad allows even with host volumes off.
			"volumes": []string{"../" + allocOutDir + ":" + outDir},
		}
		if archive != nil {
			// The client downloads the archive into local/ and the docker
			// driver loads it (docker load of an OCI layout archive).
			file := filepath.Base(strings.TrimPrefix(spec.Image, ArchivePrefix))
			src, dest, mode := cfg.ArtifactBase+"/"+file, "local/"+file, "file"
			task.Artifacts = append(task.Artifacts, &api.TaskArtifact{GetterSource: &src, RelativeDest: &dest, GetterMode: &mode})
			conf["image"] = archive.Name
			conf["load"] = file
			job.Meta["accord_image_digest"] = archive.Digest
		}
		if len(spec.Command) > 0 {
			conf["entrypoint"] = spec.Command[:1]
			if len(spec.Command) > 1 {
				conf["args"] = spec.Command[1:]
			}
		}
		if spec.WorkingDir != "" {
			conf["work_dir"] = spec.WorkingDir
		}
		task.Config = conf
	case "exec":
		// exec tasks see the allocation directory at /alloc; there is no
		// bind mount at the output dir, so tasks must honour the variable.
		task.Env["ACCORD_OUTPUT_DIR"] = "/" + allocOutDir
		conf := map[string]any{"command": spec.Command[0]}
		if len(spec.Command) > 1 {
			conf["args"] = spec.Command[1:]
		}
		task.Config = conf
	}
	if err := addInputs(cfg, task, spec); err != nil {
		return nil, err
	}

	cpu, mem := int(cpuMHz(r.MilliCPU, cfg.CPUMHzPerCore)), int(taskMemoryMB(r.MemoryBytes))
	res := &api.Resources{CPU: &cpu, MemoryMB: &mem}
	if r.GPUs > 0 {
		n := uint64(r.GPUs)
		dev := &api.RequestedDevice{Name: "nvidia/gpu", Count: &n}
		if r.GPUMemBytes > 0 {
			dev.Constraints = append(dev.Constraints, api.NewConstraint("${device.attr.memory}", ">=", fmt.Sprintf("%d MiB", memoryMB(r.GPUMemBytes))))
		}
		if r.GPUModel != "" {
			dev.Constraints = append(dev.Constraints, api.NewConstraint("${device.model}", "regexp", "(?i)"+regexp.QuoteMeta(r.GPUModel)))
		}
		res.Devices = []*api.RequestedDevice{dev}
	}
	task.Require(res)
	tg.AddTask(task)
	job.AddTaskGroup(tg)
	return job, nil
}

// addInputs embeds read-only inputs into the job as verbatim templates and,
// with docker, binds them at their targets. Nomad nodes cannot see the
// worker's files, so inputs travel in the job itself (UTF-8 text, at most
// maxInputBytes in all); larger or binary inputs need a registry or artifact
// store and are refused with ErrInvalid.
func addInputs(cfg Config, task *api.Task, spec runtimes.TaskSpec) error {
	if len(spec.Inputs) == 0 {
		return nil
	}
	if cfg.Driver != "docker" {
		return fmt.Errorf("%w: task %s: inputs need the docker driver on Nomad", runtimes.ErrInvalid, spec.ID)
	}
	total := 0
	delim := templateDelim
	perms := "0444"
	conf := task.Config
	vols, _ := conf["volumes"].([]string)
	for i, m := range spec.Inputs {
		if !path.IsAbs(m.Target) {
			return fmt.Errorf("%w: task %s: input target %q is not absolute", runtimes.ErrInvalid, spec.ID, m.Target)
		}
		info, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("%w: task %s: input %s: %v", runtimes.ErrInvalid, spec.ID, m.Source, err)
		}
		if !info.IsDir() && !info.Mode().IsRegular() {
			return fmt.Errorf("%w: task %s: input %s is not a regular file or directory", runtimes.ErrInvalid, spec.ID, m.Source)
		}
		base := fmt.Sprintf("local/accord-in/%d", i)
		files := map[string]string{} // relative dest → host path
		if info.IsDir() {
			err = filepath.WalkDir(m.Source, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				if !d.Type().IsRegular() {
					// A symlink could point anywhere on the worker; a fifo
					// or device would block or never end.
					return fmt.Errorf("%s is not a regular file", p)
				}
				rel, _ := filepath.Rel(m.Source, p)
				files[filepath.ToSlash(rel)] = p
				return nil
			})
			if err != nil {
				return fmt.Errorf("%w: task %s: input %s: %v", runtimes.ErrInvalid, spec.ID, m.Source, err)
			}
			vols = append(vols, base+":"+m.Target+":ro")
		} else {
			name := filepath.Base(m.Source)
			files[name] = m.Source
			vols = append(vols, base+"/"+name+":"+m.Target+":ro")
		}
		rels := make([]string, 0, len(files))
		for rel := range files {
			rels = append(rels, rel)
		}
		sort.Strings(rels)
		for _, rel := range rels {
			b, err := bounded.ReadFile(files[rel], int64(maxInputBytes-total))
			if errors.Is(err, bounded.ErrTooLarge) {
				return fmt.Errorf("%w: task %s: inputs exceed %d bytes; Nomad jobs carry inputs inline", runtimes.ErrInvalid, spec.ID, maxInputBytes)
			}
			if err != nil {
				return fmt.Errorf("%w: task %s: input %s: %v", runtimes.ErrInvalid, spec.ID, files[rel], err)
			}
			total += len(b)
			if !utf8.Valid(b) || strings.Contains(string(b), templateDelim) {
				return fmt.Errorf("%w: task %s: input %s is binary; Nomad jobs carry only text inputs inline", runtimes.ErrInvalid, spec.ID, files[rel])
			}
			data, dest := string(b), base+"/"+rel
			task.Templates = append(task.Templates, &api.Template{EmbeddedTmpl: &data, DestPath: &dest, LeftDelim: &delim, RightDelim: &delim, Perms: &perms})
		}
	}
	conf["volumes"] = vols
	return nil
}

// cleanOutput normalises a declared output path, which must stay inside the
// output directory.
func cleanOutput(p string) (string, error) {
	c := path.Clean(strings.TrimPrefix(p, "./"))
	if p == "" || path.IsAbs(c) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: output path %q must be relative to the output directory", runtimes.ErrInvalid, p)
	}
	return c, nil
}
