# clxp — build with `make`, test with `make test`, benchmark with `make bench`.
# Variables: CC (gcc|clang), BUILD (output dir), SAN=1 (ASan+UBSan), DEBUG=1.
CC ?= cc
BUILD ?= build
# V=1 shows the full command lines
Q := $(if $(filter 1,$(V)),,@)
PKGS := libavformat libavcodec libavfilter libavutil libswscale libswresample libcjson libpcre2-8 libutf8proc libzip

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
OPT := -O2 -march=x86-64-v3 -mtune=native
ifeq ($(DEBUG),1)
OPT := -O0 -g
endif
SANFLAGS :=
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g
OPT := -O1 -march=x86-64-v3
endif

CFLAGS_ALL := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -fopenmp -Iinclude -Isrc $(PKG_CFLAGS) $(SANFLAGS) $(CFLAGS)
LDLIBS_ALL := $(PKG_LIBS) -ldnnl -fopenmp -lm -lpthread $(SANFLAGS) $(LDFLAGS)

LIB_SRC := $(sort $(wildcard src/*/*.c))
LIB_SRC := $(filter-out src/cli/%,$(LIB_SRC))
CLI_SRC := $(sort $(wildcard src/cli/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_SUPPORT := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))
TEST_SUPPORT_OBJ := $(TEST_SUPPORT:%.c=$(BUILD)/%.o)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all lib cli tests test bench demo clean
all: $(BUILD)/libclxp.a $(BUILD)/clxp

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

# the built-in CLIP vocabulary is linked in with .incbin (src/io/clip_vocab.c)
$(BUILD)/src/io/clip_vocab.o: data/clip_bpe_merges.zip

$(BUILD)/libclxp.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	@$(if $(Q),echo "  AR      $@")
	$(Q)ar rcs $@ $^

$(BUILD)/clxp: $(CLI_OBJ) $(BUILD)/libclxp.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/%.c $(TEST_SUPPORT_OBJ) $(BUILD)/libclxp.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS_ALL) -Itests -MMD -MP $< $(TEST_SUPPORT_OBJ) $(BUILD)/libclxp.a -o $@ $(LDLIBS_ALL)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libclxp.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS_ALL) -MMD -MP $< $(BUILD)/libclxp.a -o $@ $(LDLIBS_ALL)

tests: $(TEST_BIN) $(BUILD)/clxp

# Runs every test binary (and the CLI tests) and prints "N passed, N failed".
test: tests
	@BUILD=$(BUILD) sh tests/run.sh

bench: $(BENCH_BIN) $(BUILD)/clxp
	@BUILD=$(BUILD) sh bench/run.sh

# valgrind memcheck of the CLI over a representative set of runs: no invalid access, no definite/indirect leak
# (scripts/check-memory.sh; suppressions for third-party libraries only in tests/valgrind.supp). A few minutes.
.PHONY: check-memory
check-memory: $(BUILD)/clxp
	@BUILD=$(BUILD) sh scripts/check-memory.sh

# The main job on the bundled sample inputs (tiny random-weight model: the ranking is meaningless).
demo: $(BUILD)/clxp
	$(BUILD)/clxp info tests/data/clip-tiny-quickgelu
	$(BUILD)/clxp classify -m tests/data/clip-tiny-quickgelu -l tests/data/seed/labels_clip_person.txt \
		--template 'a photo of {}.' tests/data/seed/cat_1280x781.jpg tests/data/clip-tiny-quickgelu/golden/inputs/*.png
	$(BUILD)/clxp classify -m tests/data/clip-tiny-gelu -l tests/data/seed/categories_clip.txt tests/data/seed/cat_1280x781.jpg

clean:
	rm -rf $(BUILD) build-*

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- fuzzing (fuzz/README.md) -----------------------------------------------------------------------------------
# The fuzz targets' functions (fuzz/*.c) are also linked, without libFuzzer, into tests/test_regress, which replays
# tests/regress/<target>/* and fuzz/corpus/<target>/* in the normal (and SAN=1) build.
FUZZ_SRC := $(sort $(wildcard fuzz/*.c))
FUZZ_OBJ := $(FUZZ_SRC:%.c=$(BUILD)/%.o)

$(BUILD)/tests/test_regress: tests/test_regress.c $(FUZZ_OBJ) $(TEST_SUPPORT_OBJ) $(BUILD)/libclxp.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS_ALL) -Itests -Ifuzz -MMD -MP $< $(FUZZ_OBJ) $(TEST_SUPPORT_OBJ) $(BUILD)/libclxp.a -o $@ $(LDLIBS_ALL)

# libFuzzer build: clang, the library and the targets instrumented in $(FUZZ_BUILD); images limited to 1 Mpixel there
# (a tiny file can declare a huge image: seconds per input under ASan).
#   make fuzz FUZZ_TIME=60     build every target and run each for FUZZ_TIME seconds (one at a time)
#   make fuzz-smoke            the same for 30 s each (CI)
#   make fuzz-regress          run each target once over tests/regress/<target>/* and its seeds (CI)
#   make fuzz FUZZ_TARGETS=boxes FUZZ_TIME=600 FUZZ_ARGS=-only_ascii=1    one target, extra libFuzzer flags
FUZZ_CC ?= clang
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME ?= 60
FUZZ_ARGS ?=
FUZZ_TARGETS ?= safetensors config tokenizer_load tokenizer_encode prompts boxes json image pickle torch
# Smaller image limits than the real ones (fuzz/README.md): the pixel loops are instrumented per comparison, so a
# 1-Mpixel image costs ~10 ms; the guards and conversions are the same code at any limit.
FUZZ_IMAGE_LIMITS ?= -DCLXP_IMAGE_MAX_SIDE=1024 -DCLXP_IMAGE_MAX_PIXELS=65536
FUZZ_SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -march=x86-64-v3 $(WARN) -Wno-pass-failed -fopenmp -Iinclude -Isrc $(PKG_CFLAGS) \
	$(FUZZ_SANFLAGS) -DCLXP_LIBFUZZER $(FUZZ_IMAGE_LIMITS)
FUZZ_LIBS := $(PKG_LIBS) -fopenmp -lm -lpthread
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BIN := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

.PHONY: fuzz-build fuzz fuzz-smoke fuzz-regress
$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/fuzz/%.o: fuzz/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libclxp.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	@$(if $(Q),echo "  AR      $@")
	$(Q)ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/fuzz/fuzz_%.o $(FUZZ_BUILD)/fuzz/fuzz_common.o $(FUZZ_BUILD)/libclxp.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@ $(FUZZ_LIBS)

# keep the targets' objects (make would delete them as intermediates of the pattern rules)
.SECONDARY: $(FUZZ_SRC:%.c=$(FUZZ_BUILD)/%.o)

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@sh fuzz/run.sh fuzz $(FUZZ_BUILD) $(FUZZ_TIME) "$(FUZZ_ARGS)" $(FUZZ_TARGETS)

FUZZ_SMOKE_TIME ?= 30
fuzz-smoke: fuzz-build
	@sh fuzz/run.sh fuzz $(FUZZ_BUILD) $(FUZZ_SMOKE_TIME) "$(FUZZ_ARGS)" $(FUZZ_TARGETS)

fuzz-regress: fuzz-build
	@sh fuzz/run.sh regress $(FUZZ_BUILD) 0 "$(FUZZ_ARGS)" $(FUZZ_TARGETS)

ifneq ($(filter fuzz%,$(MAKECMDGOALS)),)
-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
endif
