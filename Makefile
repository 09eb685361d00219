# The README's commands. Everything builds in build/; `make deps` installs what is missing.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CTEST = ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

.PHONY: all deps build test test-slow test-gpu test-asan test-tsan demo demo-xor bench gpu-bundle gpu-data \
        clean fuzz format format-check lint

all: build

deps:
	@bash tools/scripts/deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# Every label but gpu and slow.
test: deps build
	$(CTEST) -LE 'gpu|slow'

test-slow: deps build
	$(CTEST) -L slow

test-gpu: build
	$(CTEST) -L gpu

# The tests again under sanitizers, each build in its own directory, CPU only (gcc's -fsanitize;
# tests/sanitizers/README.md): AddressSanitizer + UndefinedBehaviorSanitizer on everything
# `make test` runs, ThreadSanitizer on the tests of code that starts threads.
test-asan: deps
	bash tests/sanitizers/run.sh asan build-asan $(JOBS)

test-tsan: deps
	bash tests/sanitizers/run.sh tsan build-tsan $(JOBS)

# libFuzzer on every parser of outside bytes, FUZZ_SECONDS each (clang, build-fuzz/; not part
# of `make test`, which replays the committed corpus and crash inputs: tests/fuzz/README.md).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" bash tests/fuzz/run_fuzz.sh

# clang-format 14 (.clang-format) over every C++ and CUDA file: `format` rewrites them,
# `format-check` lists those it would change and fails (tools/scripts/format.sh).
format:
	@bash tools/scripts/format.sh

format-check:
	@bash tools/scripts/format.sh --check

# clang-tidy (.clang-tidy) and cppcheck over the C++ sources of $(BUILD)/compile_commands.json;
# fails on a finding (tools/scripts/lint.sh; about 32 CPU-minutes, so not in CI or `make test`).
lint: build
	@LINT_JOBS=$(JOBS) bash tools/scripts/lint.sh $(BUILD)

# The default CNN on Fashion-MNIST on 2 MPI ranks (ruche-run builds the mpirun line), 64 images
# each: the global batch of 128 the default recipe was tuned for. Shows progress and
# ends with test accuracy and a confusion matrix; run again, it resumes (or just reports).
demo: deps build
	launcher/ruche-run -np 2 -- $(BUILD)/ruche train --out runs/demo --batch-size 64 --resume auto

# The course's first networks: a perceptron on AND/OR/XOR and a 2-2-1 network on XOR.
demo-xor: build
	$(BUILD)/ruche xor --config examples/xor/xor.prototxt

bench: deps build
	@bash benchmarks/run_all.sh $(BUILD)

# The GPU check's carry: the bundle and Fashion-MNIST in dist/; refused when dist/ and the
# working tree pass 60 MiB (one call to a GPU machine carries 64). PREVIOUS=OLD_BUNDLE (an
# earlier dist/ruche-gpu-bundle.tar.xz; dist/'s own is read before it is replaced) packs that
# bundle's ruche as bundle/bin/ruche-previous: the check's throughput step then measures the new
# ruche against it in the same command (tools/scripts/gpu_bundle_previous.sh).
PREVIOUS ?=
gpu-bundle: deps build dist/fashion-mnist.tar.xz
	@bash tools/scripts/gpu_bundle.sh $(BUILD)$(if $(PREVIOUS), --previous $(PREVIOUS))
	@bash tools/scripts/gpu_carry_check.sh

dist/fashion-mnist.tar.xz:
	@bash tools/scripts/gpu_data_bundle.sh $(FASHION_DIR)

# Fashion-MNIST packed again (make gpu-bundle packs it once).
gpu-data:
	@bash tools/scripts/gpu_data_bundle.sh $(FASHION_DIR)

clean:
	rm -rf $(BUILD)
