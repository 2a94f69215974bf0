# Build, test and demo targets for github.com/closenotify/openssl.
#
# Every target that compiles cgo code depends on deps, which installs the
# Debian packages the build and the tests need when they are missing (as
# root only) and downloads the Go modules.

GO ?= go
SHELL := /bin/bash

# Debian packages needed to build against OpenSSL 3 and run the tests.
DEBIAN_PACKAGES := libssl-dev pkg-config openssl gcc gnutls-bin python3 curl

.PHONY: deps test vet fmt-check demo bench bench-compare bench-compare-quick bench-sysmon bench-smoke matrix-readme test-asan fuzz test-grpccreds openssl-3.5 test-openssl-3.5

# GRPCCREDS is the gRPC credentials' own module (so that this module does
# not depend on grpc): deps, vet and test cover it with a cd.
GRPCCREDS := grpccreds

# OPENSSL35_PREFIX is where make openssl-3.5 installs OpenSSL 3.5, outside
# the repository so that every checkout and CI run reuses one build.
OPENSSL35_PREFIX ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/closenotify/openssl-3.5

# The C code builds with -Werror in make test, test-asan, test-openssl-3.5
# and CI, through CGO_CFLAGS (after the caller's, or Go's default -O2 -g),
# not in the package's #cgo flags: there a new warning from a user's newer
# compiler or OpenSSL headers would stop their build.
WERROR_CGO_CFLAGS := $(or $(CGO_CFLAGS),-O2 -g) -Werror
test test-asan test-openssl-3.5 test-grpccreds fuzz: export CGO_CFLAGS := $(WERROR_CGO_CFLAGS)

# deps installs the missing packages of DEBIAN_PACKAGES (apt-get update, then
# apt-get install -y) when run as root, fails naming them otherwise, and does
# nothing but a dpkg query when all are installed. Then go mod download, for
# this module and GRPCCREDS.
deps:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "missing Debian packages:$$missing (run 'make deps' as root)" >&2; exit 1; \
		fi; \
		echo "installing:$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi
	$(GO) mod download
	cd $(GRPCCREDS) && $(GO) mod download

# test fails if gofmt would change a file or go vet reports anything.
test: deps fmt-check vet
	$(GO) test -race -count=1 -timeout 14m ./...
	# The race detector allocates, so the zero-allocation test runs without it.
	$(GO) test -count=1 -run 'AllocateNothing' .
	$(MAKE) --no-print-directory test-grpccreds
	$(MAKE) --no-print-directory test-asan

# test-grpccreds runs the gRPC credentials' tests, a module of its own.
test-grpccreds: deps
	cd $(GRPCCREDS) && $(GO) test -race -count=1 -timeout 5m ./...

# test-asan runs the package's and the integration suites under gcc's
# AddressSanitizer (libasan8, which Debian's gcc brings): it checks the C shim
# and every buffer handed across the Go/C boundary, and reports C memory
# leaked at exit.
test-asan: deps
	$(GO) test -asan -count=1 -timeout 10m . ./integration

# fuzz runs each fuzz target of fuzz_test.go for FUZZTIME, one after the
# other. New crashers land in testdata/fuzz/<target>/, where go test (and so
# make test) replays them.
FUZZTIME ?= 30s
FUZZ_TARGETS := FuzzLoadCertificateFromPEM FuzzLoadPrivateKeyFromPEM FuzzPeerBytes

fuzz: deps
	@for target in $(FUZZ_TARGETS); do \
		echo "fuzzing $$target for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) . || exit 1; \
	done

vet: deps
	$(GO) vet ./...
	cd $(GRPCCREDS) && $(GO) vet ./...

fmt-check:
	@files=$$(gofmt -l .); \
	if [ -n "$$files" ]; then \
		echo "gofmt -l lists files that need formatting:" >&2; echo "$$files" >&2; exit 1; \
	fi

demo: deps
	$(GO) run ./cmd/closenotify demo

# bench runs each benchmark with this package and with crypto/tls in the
# same run (sub-benchmarks impl=openssl and impl=cryptotls), then benchstat
# puts the two implementations side by side, crypto/tls as the base, so that
# "vs base" is this package's difference from crypto/tls, with its
# confidence. BenchmarkBulkPath adds impl=openssl-generic, our Conn on the
# generic path, in a third column. BENCHFLAGS sets the count (benchstat wants at
# least 6 samples for a confidence interval) or, to try the pipeline,
# BENCHFLAGS='-benchtime=100x -count=2'.
BENCHSTAT := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
BENCHFLAGS ?= -count 6

bench: deps
	@set -o pipefail; out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	$(GO) test -run '^$$' -bench . -benchmem $(BENCHFLAGS) . | tee "$$out" && \
	$(GO) run $(BENCHSTAT) -col '/impl@(cryptotls openssl openssl-generic)' "$$out"

# openssl-3.5 builds OpenSSL 3.5 (the current LTS, Debian 13's) from
# Debian trixie's source package into OPENSSL35_PREFIX, with the FIPS
# provider, unless it is already there (.ci/build-openssl).
openssl-3.5:
	.ci/build-openssl $(OPENSSL35_PREFIX)

# test-openssl-3.5 runs the package's and the integration suites built and
# linked against that OpenSSL, with its openssl program as the s_server and
# s_client peers, then the FIPS tests and a set of shutdown tests in FIPS
# mode (.ci/test-openssl).
test-openssl-3.5: deps fmt-check vet openssl-3.5
	.ci/test-openssl $(OPENSSL35_PREFIX) 3.5

# bench-compare runs the comparative benchmark (bench/, a module of its own):
# this package, crypto/tls, libp2p/go-openssl, a C program over libssl
# (bench/cbench/cbench.c, built here with gcc) and plain TCP, interleaved
# and repeated. It prints the table and writes it, the samples (JSON), Go
# benchmark lines for benchstat and a chart into BENCH_OUT.
# BENCH_FLAGS=-quick makes a short run; bench-compare-quick is that.
BENCH_OUT ?= $(CURDIR)/bench/out
BENCH_FLAGS ?=
CBENCH := $(CURDIR)/bench/cbench/cbench

$(CBENCH): bench/cbench/cbench.c
	gcc -O2 -Wall -Werror -o $@ $< $$(pkg-config --cflags --libs libssl libcrypto) -lpthread

bench-compare: deps $(CBENCH)
	mkdir -p $(BENCH_OUT)
	set -o pipefail; cd bench && $(GO) run . -cbench $(CBENCH) $(BENCH_FLAGS) \
		-json $(BENCH_OUT)/results.json -benchfmt $(BENCH_OUT)/results.txt \
		-png $(BENCH_OUT)/compare.png | tee $(BENCH_OUT)/table.md

# bench-sysmon runs bench-compare's bulk, handshake and ping-pong workloads
# with a Go runtime whose sysmon never polls more often than every 10 ms (a
# copy of GOROOT that bench/sysmon-goroot patches, kept in SYSMON_GOROOT),
# to measure what sysmon's polling costs each Go implementation (README,
# Performance). Every Go child of that run uses the patched runtime.
SYSMON_GOROOT ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/closenotify/go-sysmon-10ms

bench-sysmon: deps $(CBENCH)
	bench/sysmon-goroot $(SYSMON_GOROOT)
	mkdir -p $(BENCH_OUT)
	set -o pipefail; cd bench && GOROOT=$(SYSMON_GOROOT) GOTOOLCHAIN=local $(SYSMON_GOROOT)/bin/go run . \
		-cbench $(CBENCH) -only bulk16k,bulk1k,hs1,pingpong $(BENCH_FLAGS) | tee $(BENCH_OUT)/sysmon.md

bench-compare-quick:
	$(MAKE) --no-print-directory bench-compare BENCH_FLAGS=-quick

# bench-smoke runs every workload of bench-compare once, briefly (seconds).
bench-smoke: deps
	cd bench && $(GO) test -count=1 .

# matrix-readme runs the shutdown matrix and writes what each peer did into
# README.md's table, then runs it again against OpenSSL 3.5 (our side and
# the s_server and s_client peers), which adds a column for each peer whose
# cells differ there.
matrix-readme: deps openssl-3.5
	$(GO) test -count=1 -run '^TestMatrix$$' ./integration -args -matrix.readme=$(CURDIR)/README.md
	.ci/with-openssl $(OPENSSL35_PREFIX) 3.5 \
		$(GO) test -count=1 -run '^TestMatrix$$' ./integration -args -matrix.readme=$(CURDIR)/README.md -matrix.readme.openssl=3.5
