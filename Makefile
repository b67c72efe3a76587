# clxp — build with `make`, test with `make test`, benchmark with `make bench`.
# Variables: CC (gcc|clang), BUILD (output dir), SAN=1 (ASan+UBSan), DEBUG=1.
CC ?= cc
BUILD ?= build
# V=1 shows the full command lines
Q := $(if $(filter 1,$(V)),,@)
PKGS := libavformat libavcodec libavfilter libavutil libswscale libswresample libcjson libpcre2-8 libutf8proc

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

# The main job on the bundled sample inputs (tiny random-weight model: the ranking is meaningless).
demo: $(BUILD)/clxp
	$(BUILD)/clxp info tests/data/clip-tiny-quickgelu
	$(BUILD)/clxp classify -m tests/data/clip-tiny-quickgelu -l tests/data/seed/labels_clip_person.txt \
		--template 'a photo of {}.' tests/data/seed/cat_1280x781.jpg tests/data/clip-tiny-quickgelu/golden/inputs/*.png
	$(BUILD)/clxp classify -m tests/data/clip-tiny-gelu -l tests/data/seed/categories_clip.txt tests/data/seed/cat_1280x781.jpg

clean:
	rm -rf $(BUILD) build-*

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
