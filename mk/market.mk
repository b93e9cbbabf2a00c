# Market: the combinatorial-auction benchmark against CBC and HiGHS (GLPK optional).
#
#   make bench-auction   CATS-style "arbitrary" instances (100×500, 200×1000,
#                        300×1500; seeds 1..AUCTION_SEEDS) drawn from
#                        AUCTION_DIST: benchmark (Gasse et al.'s benchmark
#                        sets, as their code and Ecole generate them) or cats
#                        (the CATS paper's distribution), each solved by
#                        Accord's solver, cbc and HiGHS (npm highs 1.15.3,
#                        WebAssembly, one thread, installed by the bench into
#                        the user cache dir; glpsol too with AUCTION_GLPK=true)
#                        in the same run; the pass rule is equal objectives
#                        (proven optima agree, unproven answers within every
#                        bound); prints per-size medians, ratios accord/peer,
#                        VCG time versus WDP time for AUCTION_VCG, and
#                        issue 25's targets with PASS/FAIL.
#                        Each solver gets AUCTION_LIMIT per instance, so the
#                        full run takes up to 3 × 9 × 10 min on a slow box;
#                        e.g. AUCTION_SIZES=100x500 AUCTION_VCG=100x500 for
#                        a quick one. Needs Debian coinor-cbc, node and npm
#                        (glpk-utils for AUCTION_GLPK). Accord and CBC search
#                        with AUCTION_THREADS threads (default: the CPUs);
#                        HiGHS and GLPK have one.
.PHONY: bench-auction
BENCH_TARGETS += bench-auction
FUZZ_TARGETS += ./market/wdp:FuzzDecodeSolve
AUCTION_SIZES ?= 100x500,200x1000,300x1500
AUCTION_SEEDS ?= 3
AUCTION_LIMIT ?= 10m
AUCTION_VCG ?= 200x1000
AUCTION_DIST ?= benchmark
AUCTION_THREADS ?= $(shell nproc)
AUCTION_GLPK ?= false
bench-auction:
	$(GO) run ./market/cmd/auctionbench -dist $(AUCTION_DIST) -sizes $(AUCTION_SIZES) -seeds $(AUCTION_SEEDS) -limit $(AUCTION_LIMIT) -vcg $(AUCTION_VCG) -threads $(AUCTION_THREADS) -glpk=$(AUCTION_GLPK)

# bench-market-clear   clears a synthetic market batch (CLEAR_SIZE jobs ×
#                      providers, default 1000x100: multi-task jobs,
#                      co-location groups, GPU models; seed CLEAR_SEED),
#                      loaded from spec files as `accord market clear`
#                      loads them, with market.ClearBatch (VCG prices
#                      included), then solves the same winner-determination
#                      instance exported as LP with cbc and HiGHS in the same
#                      run; prints times, objectives, bounds and gaps. Each
#                      solver gets CLEAR_LIMIT.
.PHONY: bench-market-clear
BENCH_TARGETS += bench-market-clear
CLEAR_SIZE ?= 1000x100
CLEAR_SEED ?= 1
CLEAR_LIMIT ?= 5m
bench-market-clear:
	$(GO) run ./market/cmd/auctionbench -clear $(CLEAR_SIZE) -clear-seed $(CLEAR_SEED) -limit $(CLEAR_LIMIT) -threads $(AUCTION_THREADS)

# bench-saop           stacked alternating offers (SAOP) against the auction
#                      and bilateral alternating offers on the same
#                      SAOP_JOBS synthetic multi-task jobs (at least two
#                      co-location groups) × SAOP_PROVIDERS synthetic
#                      providers (seed SAOP_SEED), each job negotiated alone
#                      by each protocol (market.Compare); prints agreement
#                      and split rates, the buyer's mean and median price,
#                      price ÷ budget, rounds and moves, and the prices on
#                      the jobs every protocol agreed on with their median
#                      ratio to the auction's.
.PHONY: bench-saop
BENCH_TARGETS += bench-saop
FUZZ_TARGETS += ./market:FuzzStacked
SAOP_JOBS ?= 1000
SAOP_PROVIDERS ?= 8
SAOP_SEED ?= 1
bench-saop:
	$(GO) run ./market/cmd/saopbench -jobs $(SAOP_JOBS) -providers $(SAOP_PROVIDERS) -seed $(SAOP_SEED)
