"""Where a run meets the database and the pages: the mapping between engine records and rows, the store
every event, ledger line and person's answer goes through, the recorder on a run's bus, the executor that
plays a run, the seat desk it asks, and the relay that hands stored events to open pages."""
