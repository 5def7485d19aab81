package sorted

// ServerCursorID is the id of the server's cursor under c, for a test to
// kill it.
func ServerCursorID(c *Cursor) int64 { return c.cur.ID() }
