// Command embedded serves FerretDB (SQLite backend) in-process on a local
// address until SIGINT or SIGTERM: a MongoDB wire-protocol server for
// machines where mongod cannot be installed.
//
//	go run ./scripts/embedded --addr 127.0.0.1:27017 --dir ./.embedded
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tenantmigrate/runner/scripts/embedded/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:27017", "host:port to listen on")
	dir := flag.String("dir", ".embedded", "directory for the SQLite data files")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	s, err := server.Start(ctx, server.Options{Addr: *addr, Dir: *dir, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "embedded:", err)
		os.Exit(1)
	}
	fmt.Printf("embedded FerretDB listening: %s (data in %s); Ctrl-C to stop\n", s.URI(), *dir)
	<-ctx.Done()
	s.Stop()
	fmt.Println("embedded: stopped")
}
