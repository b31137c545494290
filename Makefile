# Top-level build for the coupon-grab system.
#
#   make                      build everything (warning-free, C11)
#   make test                 install what is missing, build, start the stack, run every test
#   make run                  install, build, start the stack, apply the schema, seed, start the services
#   make stop                 stop everything `make run` started
#   make unit                 build and run the unit tests only (no servers needed)
#   make SANITIZER=address    build into build-address/ with ASan (also: undefined, thread)
#   make install PREFIX=/usr/local DESTDIR=
#   V=1                       print full command lines
#   WERROR=1                  turn warnings into errors (CI does)

CC       ?= cc
PREFIX   ?= /usr/local
DESTDIR  ?=
SANITIZER ?=
V        ?= 0
WERROR   ?= 0

BUILD := build$(if $(SANITIZER),-$(SANITIZER))
Q := $(if $(filter 1,$(V)),,@)
say = $(if $(filter 1,$(V)),,@printf '  %-6s %s\n' $(1) $(2);)

# Libraries, found with pkg-config; each name is followed by the Debian
# package that provides it, so that a missing one is named precisely.
PKG_DEPS := libevent:libevent-dev libevent_pthreads:libevent-dev hiredis:libhiredis-dev \
            librabbitmq:librabbitmq-dev libmariadb:libmariadb-dev jansson:libjansson-dev
PKG_NAMES := $(foreach d,$(PKG_DEPS),$(firstword $(subst :, ,$(d))))

# Goals that must work before the libraries are installed (they install them).
NO_DEPS_GOALS := run test stop clean deps help stack-start stack-stop
ifneq ($(filter-out $(NO_DEPS_GOALS),$(or $(MAKECMDGOALS),all)),)
  ifeq ($(shell command -v pkg-config),)
    $(error pkg-config not found: apt-get install pkg-config (or run: scripts/stack install))
  endif
  $(foreach d,$(PKG_DEPS),$(if $(shell pkg-config --exists $(firstword $(subst :, ,$(d))) && echo ok),,\
    $(error library $(firstword $(subst :, ,$(d))) not found: apt-get install $(lastword $(subst :, ,$(d))) (or run: scripts/stack install))))
endif

WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wwrite-strings -Wformat=2 $(if $(filter 1,$(WERROR)),-Werror)
SAN_FLAGS := $(if $(SANITIZER),-fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all)
OPT ?= -O2 -g
CFLAGS ?=
LDFLAGS ?=
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) $(WARNINGS) $(SAN_FLAGS) -MMD -MP \
              -Icommon/src -Icommon/tests -Ishard-router/src $(shell pkg-config --cflags $(PKG_NAMES) 2>/dev/null) $(CFLAGS)
ALL_LDFLAGS := $(SAN_FLAGS) $(LDFLAGS)
LIBS := $(shell pkg-config --libs $(PKG_NAMES) 2>/dev/null) -lpthread -lm

# The shared library: every program links it.
COMMON_SRCS := $(wildcard common/src/*.c)
COMMON_OBJS := $(COMMON_SRCS:%.c=$(BUILD)/%.o)
COMMON_LIB  := $(BUILD)/libcommon.a

# The shard-router library (shard-router/src/sr_*.c), linked by every
# program that routes orders; the rest of shard-router/src is its CLI.
SR_SRCS := $(wildcard shard-router/src/sr_*.c)
SR_OBJS := $(SR_SRCS:%.c=$(BUILD)/%.o)
SR_LIB  := $(BUILD)/libshardrouter.a
LINK_LIBS := $(SR_LIB) $(COMMON_LIB)

# Programs: every other .c under <program>/src is linked into build/bin/<program>.
PROGRAMS := orchestrator stock-svc order-svc shard-router consistency-test seeder stress-test
prog_objs = $(patsubst %.c,$(BUILD)/%.o,$(filter-out $(SR_SRCS),$(wildcard $(1)/src/*.c)))
PROGRAM_BINS := $(PROGRAMS:%=$(BUILD)/bin/%)

# Tests: <dir>/tests/test_*.c are unit tests (no servers), it_*.c are
# integration tests (need the local stack). Each links the shared library.
UNIT_SRCS := $(wildcard */tests/test_*.c)
IT_SRCS   := $(wildcard */tests/it_*.c)
UNIT_BINS := $(patsubst %.c,$(BUILD)/tests/%,$(notdir $(UNIT_SRCS)))
IT_BINS   := $(patsubst %.c,$(BUILD)/tests/%,$(notdir $(IT_SRCS)))

.PHONY: all test run stop unit clean install deps help
all: $(COMMON_LIB) $(SR_LIB) $(PROGRAM_BINS) $(UNIT_BINS) $(IT_BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(COMMON_LIB): $(COMMON_OBJS)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

$(SR_LIB): $(SR_OBJS)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

define program_rule
$(BUILD)/bin/$(1): $(call prog_objs,$(1)) $(LINK_LIBS)
	@mkdir -p $$(dir $$@)
	$$(call say,LINK,$$@)$$(CC) $$(ALL_LDFLAGS) -o $$@ $(call prog_objs,$(1)) $(LINK_LIBS) $$(LIBS)
endef
$(foreach p,$(PROGRAMS),$(eval $(call program_rule,$(p))))

# A test of <program>/tests also links that program's objects but main.o,
# so that it can test the program's own modules.
test_objs = $(filter-out %/main.o,$(call prog_objs,$(firstword $(subst /, ,$(1)))))
define test_rule
$(BUILD)/tests/$(basename $(notdir $(1))): $(BUILD)/$(basename $(1)).o $(call test_objs,$(1)) $(LINK_LIBS)
	@mkdir -p $$(dir $$@)
	$$(call say,LINK,$$@)$$(CC) $$(ALL_LDFLAGS) -o $$@ $$< $(call test_objs,$(1)) $(LINK_LIBS) $$(LIBS)
endef
$(foreach t,$(UNIT_SRCS) $(IT_SRCS),$(eval $(call test_rule,$(t))))

unit: $(UNIT_BINS)
	$(Q)scripts/run-tests --unit --build $(BUILD)

# Everything CI runs; also what a developer runs before pushing.
test:
	$(Q)scripts/stack install
	$(Q)$(MAKE) --no-print-directory all WERROR=1
	$(Q)$(MAKE) --no-print-directory all WERROR=1 SANITIZER=address
	$(Q)scripts/run-tests --all

# `make run`: the stack in run/ (or $STACK_DIR), its schema, the seed data
# (seeder --help), then the services, the API on ORCH_HTTP_PORT.
ORCH_HTTP_PORT ?= 8000
RUN_STACK_DIR = $${STACK_DIR:-$(CURDIR)/run}
# The seeder's settings (SEED_*) from the stack's addresses.
SEED_FROM_STACK = set -a && . "$(RUN_STACK_DIR)/stack.env" && set +a && \
    SEED_MAIN_DB=$$MARIADB_MAIN SEED_DB_USER=$$MARIADB_USER \
    SEED_DB_PASSWORD_FILE=$$MARIADB_PASSWORD_FILE SEED_SENTINELS=$$SENTINEL_ADDRS \
    SEED_SENTINEL_MASTER=$$SENTINEL_MASTER_NAME
GRAB_JSON = {\"user_id\":1,\"coupon_id\":1,\"room_id\":1}

run:
	$(Q)scripts/stack install
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/stack start
	$(Q)scripts/stack migrate
	$(Q)$(SEED_FROM_STACK) $(BUILD)/bin/seeder
	$(Q)ORCH_HTTP_PORT=$(ORCH_HTTP_PORT) BUILD_DIR=$(CURDIR)/$(BUILD) scripts/services start
	@echo
	@echo "run: the API listens on http://127.0.0.1:$(ORCH_HTTP_PORT)"
	@echo "run: servers: scripts/stack status; services: scripts/services status; stop all: make stop"
	@echo "run: grab coupon 1 (room 1) for user 1:"
	@echo "  curl -s -XPOST localhost:$(ORCH_HTTP_PORT)/api/coupon/grab -H 'Content-Type: application/json' -d '$(GRAB_JSON)'"

stop:
	$(Q)if [ -f "$(RUN_STACK_DIR)/stack.env" ]; then scripts/services stop; fi
	$(Q)scripts/stack stop

deps:
	$(Q)scripts/stack install

install: $(PROGRAM_BINS)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(PROGRAM_BINS) $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build build-*

help:
	@sed -n '2,13p' Makefile | sed 's/^# \{0,1\}//'

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
