# ngx_llm_router — build, run and test against Debian's nginx.
#
#   make run     install what is missing, build, start the router in the
#                foreground on 127.0.0.1:8080 with its built-in mock providers
#   make test    install what is missing, build, run the whole suite
#
# Other targets: deps, build, prices, asan, test-asan, test-valgrind, fuzz,
# fuzz-regress, bench, clean.

SHELL       := /bin/bash
TOP         := $(CURDIR)
BUILD       := $(TOP)/build
NGX_SRC     := /usr/share/nginx/src
NGX_BUILD   := $(BUILD)/nginx
NGINX_BIN   ?= /usr/sbin/nginx
MODULE_SO   := $(NGX_BUILD)/objs/ngx_http_llm_router_module.so
ECHO_SO     := /usr/lib/nginx/modules/ngx_http_echo_module.so
RUN_DIR     := $(BUILD)/run
PROVE_JOBS  ?= 1
T           ?= t/

# -W (= -Wextra) -Wall -Werror come from nginx's own gcc flags, which also
# add -Wno-unused-parameter: nginx callbacks take parameters they ignore.
CC_OPT      ?= -g -O2 -Wextra -Wall -Werror -fstack-protector-strong \
               -D_FORTIFY_SOURCE=2 -fPIC

DEB_PACKAGES := nginx-core nginx-dev libnginx-mod-http-echo libjansson-dev \
                libssl-dev libcurl4-openssl-dev curl valgrind wrk \
                libtest-base-perl libtext-diff-perl libtest-longstring-perl \
                liblist-moreutils-perl libwww-perl libhttp-message-perl \
                liburi-perl libipc-run-perl

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

SOURCES := config $(wildcard ngx_llm_router_module/*.c ngx_llm_router_module/*.h)

.PHONY: all deps build prices run test test-runner asan test-asan \
        test-valgrind fuzz fuzz-regress bench clean

all: build prices

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' \
	        || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	        --no-install-recommends $$missing >/dev/null; \
	fi

# nginx-dev ships configure, headers and conf_flags: a module built from
# them loads into Debian's /usr/sbin/nginx (--with-compat).
$(NGX_BUILD)/objs/Makefile: config
	@[ -d $(NGX_SRC) ] || { echo "nginx-dev is missing: run make deps"; exit 1; }
	rm -rf $(NGX_BUILD)
	mkdir -p $(BUILD)
	cp -r $(NGX_SRC) $(NGX_BUILD)
	cd $(NGX_BUILD) && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" --with-cc-opt="$(CC_OPT)" \
	        --add-dynamic-module=$(TOP) > $(BUILD)/configure.log

$(MODULE_SO): $(NGX_BUILD)/objs/Makefile $(SOURCES)
	$(MAKE) -s -C $(NGX_BUILD) -f objs/Makefile modules

build: deps $(MODULE_SO)

# llm-prices, the price-catalog tool (libcurl, outside nginx): tools/prices/
prices: deps
	$(MAKE) -s -C tools/prices

run: build
	@mkdir -p $(RUN_DIR)/logs $(RUN_DIR)/modules $(RUN_DIR)/conf
	@ln -sf $(MODULE_SO) $(RUN_DIR)/modules/
	@echo "router on http://127.0.0.1:8080 (mock providers on :8081), Ctrl-C stops"
	@echo "try: curl -N http://127.0.0.1:8080/v1/chat/completions \\"
	@echo "       -d '{\"model\":\"mock-fast\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
	$(NGINX_BIN) -p $(RUN_DIR)/ -c $(TOP)/conf-examples/quickstart.conf \
	    -g 'daemon off;'

test: build prices
	TEST_NGINX_BINARY="$(NGINX_BIN)" \
	TEST_NGINX_LOAD_MODULES="$(MODULE_SO) $(ECHO_SO)" \
	TEST_NGINX_MODULE_SO=$(MODULE_SO) \
	TEST_NGINX_ROOT=$(TOP) \
	prove -j$(PROVE_JOBS) $$(perl -MTest::Nginx::Socket -e1 2>/dev/null \
	    || echo -I$(TOP)/t/lib) $(T)

# the fallback Test::Nginx runner's own tests (plain nginx + echo module)
test-runner: deps
	TEST_NGINX_USE_LITE=1 TEST_NGINX_BINARY=$(NGINX_BIN) \
	TEST_NGINX_LOAD_MODULES=$(ECHO_SO) prove -I$(TOP)/t/lib t/lib/selftest/

# The suite with the module built under AddressSanitizer: libasan is
# preloaded into Debian's nginx, which is not instrumented itself.  Leaks
# are left to test-valgrind: nginx itself keeps some memory until exit.
asan: deps
	$(MAKE) NGX_BUILD=$(BUILD)/nginx-asan \
	    CC_OPT="-g -O1 -fno-omit-frame-pointer -fsanitize=address -Wextra -Wall -Werror -fPIC" \
	    $(BUILD)/nginx-asan/objs/ngx_http_llm_router_module.so

test-asan: asan
	rm -rf $(BUILD)/asan-logs && mkdir -p $(BUILD)/asan-logs
	$(MAKE) test MODULE_SO=$(BUILD)/nginx-asan/objs/ngx_http_llm_router_module.so \
	    NGINX_BIN="env LD_PRELOAD=$$(gcc -print-file-name=libasan.so) \
	        ASAN_OPTIONS=detect_leaks=0:log_path=$(BUILD)/asan-logs/asan \
	        $(NGINX_BIN)"
	@if grep -l 'ERROR: AddressSanitizer' $(BUILD)/asan-logs/* 2>/dev/null; \
	then echo "AddressSanitizer found errors (above)"; exit 1; \
	else echo "AddressSanitizer: no errors"; fi

test-valgrind: build
	TEST_NGINX_USE_VALGRIND=1 $(MAKE) test

# libFuzzer targets for the SSE parser and the dialect translations, with
# ASan and UBSan (tools/fuzz/README.md); clang is installed when missing.
FUZZ_SECONDS ?= 600

fuzz: build
	tools/fuzz/run.sh --install -j 2 $(FUZZ_SECONDS)

# the seeds and every input that once crashed, once each: seconds
fuzz-regress: build
	tools/fuzz/run.sh --install --regress

# The benchmark against plain nginx proxy_pass, on this machine, writes
# bench/REPORT.md (a few minutes; BENCH_FLAGS=--quick for one round).
bench: build
	$(MAKE) -s -C tools/bench
	NGINX_BIN=$(NGINX_BIN) MODULE=$(MODULE_SO) perl bench/bench.pl $(BENCH_FLAGS)

clean:
	rm -rf $(BUILD) t/servroot* bench/out
	$(MAKE) -s -C tools/prices clean
	$(MAKE) -s -C tools/bench clean
