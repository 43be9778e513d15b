"""Result records: the one schema (:mod:`.schema`), results files under a lock (:mod:`.store`,
:mod:`.files`), a record built from an evaluation (:mod:`.build`), provenance, training history,
the printed table (:mod:`.tables`) and the conversion of 0.1.0 files (:mod:`.migrate`)."""
