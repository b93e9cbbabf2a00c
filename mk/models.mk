# Model exchange (models/): fuzz targets for `make fuzz` / `make test`.
FUZZ_TARGETS += ./models:FuzzManifest ./models:FuzzConstraint ./models:FuzzCheckLicense
