# Market: the combinatorial-auction benchmark against CBC and GLPK.
#
#   make bench-auction   CATS-style "arbitrary" instances (100×500, 200×1000,
#                        300×1500; seeds 1..AUCTION_SEEDS) drawn from
#                        AUCTION_DIST: benchmark (Gasse et al.'s benchmark
#                        sets, as their code and Ecole generate them) or cats
#                        (the CATS paper's distribution), each solved by
#                        Accord's solver, cbc and glpsol in the same run;
#                        checks that the objectives agree, prints per-size
#                        medians and ratios accord/CBC and accord/GLPK, and
#                        VCG time versus WDP time for AUCTION_VCG.
#                        Each solver gets AUCTION_LIMIT per instance, so the
#                        full run takes up to 3 × 9 × 10 min on a slow box;
#                        e.g. AUCTION_SIZES=100x500 AUCTION_VCG=100x500 for
#                        a quick one. Needs Debian coinor-cbc and glpk-utils
#                        (scripts/deps/market.txt). Accord and CBC search
#                        with AUCTION_THREADS threads (default: the CPUs);
#                        GLPK has one.
.PHONY: bench-auction
BENCH_TARGETS += bench-auction
FUZZ_TARGETS += ./market/wdp:FuzzDecodeSolve
AUCTION_SIZES ?= 100x500,200x1000,300x1500
AUCTION_SEEDS ?= 3
AUCTION_LIMIT ?= 10m
AUCTION_VCG ?= 200x1000
AUCTION_DIST ?= benchmark
AUCTION_THREADS ?= $(shell nproc)
bench-auction:
	$(GO) run ./market/cmd/auctionbench -dist $(AUCTION_DIST) -sizes $(AUCTION_SIZES) -seeds $(AUCTION_SEEDS) -limit $(AUCTION_LIMIT) -vcg $(AUCTION_VCG) -threads $(AUCTION_THREADS)
