# Fhirstone: the README's commands. `make run` and `make test` install what they need themselves.
BUILD      ?= build/release
FUZZ_BUILD ?= build/fuzz
LISTEN     ?= 127.0.0.1:8080
BASE_URL   ?= http://localhost:8080
CMAKE_GEN  := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")

.PHONY: all deps deps-test deps-bench configure build run test fuzz-build fuzz bench bench-search bench-auth bench-export bench-audit bench-postgres bench-transactions bench-import clean format

all: build

deps:
	@tools/install-deps.sh build

deps-test:
	@tools/install-deps.sh test

deps-bench:
	@tools/install-deps.sh bench

configure: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release \
	  -DFHIRSTONE_FUZZ_DIR=$(abspath $(FUZZ_BUILD))

build: configure
	@cmake --build $(BUILD)

run: build
	@mkdir -p var
	$(BUILD)/fhirstone serve --demo --listen $(LISTEN) --base-url $(BASE_URL) --db sqlite:var/fhirstone.db

fuzz-build: deps-test
	@test -f $(FUZZ_BUILD)/CMakeCache.txt || cmake -S . -B $(FUZZ_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 -DFHIRSTONE_FUZZ=ON
	@cmake --build $(FUZZ_BUILD) --target fuzzers

test: deps-test build fuzz-build
	@cd $(BUILD) && ctest --output-on-failure --timeout 900 -j2

# Long fuzzing run (not part of `make test`): FUZZ_SECONDS=600 make fuzz
FUZZ_SECONDS ?= 300
fuzz: fuzz-build
	@mkdir -p $(FUZZ_BUILD)/corpus/resource $(FUZZ_BUILD)/corpus/fhirpath $(FUZZ_BUILD)/corpus/textquery
	$(FUZZ_BUILD)/fhir_resource_fuzzer -max_total_time=$(FUZZ_SECONDS) -dict=src/fhir/resource_fuzzer.dict $(FUZZ_BUILD)/corpus/resource tests/fuzz/corpus/resource
	$(FUZZ_BUILD)/fhirpath_fuzzer -max_total_time=$(FUZZ_SECONDS) $(FUZZ_BUILD)/corpus/fhirpath tests/fuzz/corpus/fhirpath
	$(FUZZ_BUILD)/text_query_fuzzer -max_total_time=$(FUZZ_SECONDS) $(FUZZ_BUILD)/corpus/textquery tests/fuzz/corpus/textquery

bench: deps-bench build
	bench/run.sh

bench-search: deps-bench build
	bench/search.sh

bench-auth: deps-bench build
	bench/auth.sh

bench-export: deps-bench build
	bench/export.sh

bench-audit: deps-bench build
	bench/audit.sh

bench-postgres: deps-bench build
	bench/postgres.sh

bench-transactions: deps-bench build
	bench/transactions.sh

bench-import: deps-bench build
	bench/import.sh

clean:
	rm -rf build

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')
