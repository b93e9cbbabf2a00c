# A multi-service Temporal cluster on PostgreSQL (scripts/services/temporal.sh),
# for running the control plane on a real cluster (docs/deploy.md).
#
#   make temporal-tools  build temporal-server, temporal-sql-tool and
#                        temporal-ns-setup into .cache/tools/bin (tools/temporal)
#   make temporal-up     start a cluster under $(TEMPORAL_DIR) (PostgreSQL, schema,
#                        server, namespace default); prints the frontend address
#   make temporal-down   stop it (server, then PostgreSQL)
#   make test-temporal   the integration test: accord worker on the cluster, the
#                        server restarted mid-job, the ledger on PostgreSQL
.PHONY: temporal-tools temporal-up temporal-down test-temporal
TEMPORAL_DIR ?= .cache/services/temporal
TEMPORAL_PORT ?=

temporal-tools:
	scripts/temporal-tools.sh

temporal-up:
	scripts/services/temporal.sh start $(TEMPORAL_DIR) $(TEMPORAL_PORT)

temporal-down:
	scripts/services/temporal.sh stop $(TEMPORAL_DIR)

test-temporal:
	$(GO) test -count=1 -v -run '^TestTemporalPostgres$$' ./integration/
