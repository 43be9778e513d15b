"""Result records: the one schema (`.schema`), results files under a lock (`.store`,
`.files`), a record built from an evaluation (`.build`), provenance, training history,
the printed table (`.tables`) and the conversion of 0.1.0 files (`.migrate`)."""
