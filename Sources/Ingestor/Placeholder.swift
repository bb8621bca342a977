enum IngestorPlaceholder {}
