package references

// StopAfterRecord makes a run stop, with an error, once it has written the
// records of its first chunk and before it writes the documents: a kill
// there. StopAfterWrite stops it after the document writes, before their
// read-back.
func StopAfterRecord(cfg Config) Config { cfg.stop = stopAfterRecord; return cfg }

func StopAfterWrite(cfg Config) Config { cfg.stop = stopAfterWrite; return cfg }
