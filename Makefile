# Accord's build. `make run` runs the main job on a fresh machine; `make test`
# runs every test, installing and starting what the tests need.
GO        ?= go
export GOTOOLCHAIN := local
BIN       := bin/accord
ACCORD_HOME ?= $(CURDIR)/.cache/home
export ACCORD_HOME

# Area makefiles add to these: FUZZ_TARGETS (pkg:FuzzName), BENCH_TARGETS, RUN_PREREQS.
FUZZ_TARGETS  :=
BENCH_TARGETS :=
RUN_PREREQS   :=
FUZZTIME      ?= 3000x

.PHONY: all build test run bench lint deps fuzz clean
all: build

# Area makefiles come before the rules that read their variables.
include $(sort $(wildcard mk/*.mk))

# The commit is stamped with -X for builds where Go's own VCS stamp is missing.
COMMIT    := $(shell git rev-parse --short HEAD 2>/dev/null)
build:
	$(GO) build -ldflags "-X main.commit=$(COMMIT)" -o $(BIN) ./cmd/accord

# deps installs the Debian packages listed in scripts/deps/*.txt (root, idempotent).
deps:
	scripts/install-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: deps build
	scripts/test.sh
	$(MAKE) fuzz

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME); \
	done

bench: build $(BENCH_TARGETS)

clean:
	rm -rf bin .cache/home

