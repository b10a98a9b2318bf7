# The two commands: `make run` (quickstart on the embedded default) and `make test` (all tests).
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
CMAKE_FLAGS ?=
ifdef CI
CMAKE_FLAGS += -DSPATE_WERROR=ON
endif
GENERATOR := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
JOBS ?= $(shell nproc)

.PHONY: all deps configure build run test bench asan tsan fuzz clean format

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@test -f $(BUILD_DIR)/CMakeCache.txt || cmake -S . -B $(BUILD_DIR) $(GENERATOR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	./$(BUILD_DIR)/spate run examples/quickstart.yaml

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 600

bench: build
	@bash scripts/install-deps.sh --bench
	bash bench/run.sh
	bash bench/ingest_bench.sh

asan:
	$(MAKE) test BUILD_DIR=build-asan CMAKE_FLAGS="-DSPATE_SANITIZE=address -DSPATE_BUILD_BENCH=OFF"

tsan:
	$(MAKE) test BUILD_DIR=build-tsan CMAKE_FLAGS="-DSPATE_SANITIZE=thread -DSPATE_BUILD_BENCH=OFF"

FUZZ_RUNS ?= 100000
fuzz:
	JOBS=$(JOBS) bash scripts/fuzz.sh $(FUZZ_RUNS)

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf $(BUILD_DIR)
