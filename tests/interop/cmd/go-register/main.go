// go-register registers instances with kitex-contrib/registry-etcd's registry,
// the Go library's own way (one registry, so one etcd client, one lease and
// one KeepAlive per instance, as N Kitex processes would), and stays until
// SIGTERM or SIGINT, then deregisters them (deleting the keys) and exits 0.
//
//	go-register --etcd http://127.0.0.1:2379 --service echo --addr 127.0.0.1:8888 \
//	    [--tags k=v,...] [--weight 10] [--prefix P] [--ttl SECONDS] [--count N]
//
// With --count N the instances get ports port, port+1, ... port+N-1.
// Output: one "registered" line per instance, then "ready" (count, seconds
// taken); on SIGTERM "deregistered" and "stopped".
package main

import (
	"flag"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/cloudwego/kitex/pkg/klog"
	"github.com/cloudwego/kitex/pkg/registry"
	"github.com/cloudwego/kitex/pkg/utils"
	etcd "github.com/kitex-contrib/registry-etcd"

	"kitexinterop/internal/jsonl"
)

func main() {
	endpoints := flag.String("etcd", "", "comma-separated etcd endpoints")
	service := flag.String("service", "", "service name")
	addr := flag.String("addr", "", "HOST:PORT to register ([v6]:PORT for IPv6)")
	tagsFlag := flag.String("tags", "", "k=v,... (none: the value's tags are null)")
	weight := flag.Int("weight", 10, "weight (a Kitex server registers 10 when none is set)")
	prefix := flag.String("prefix", "", "key prefix (WithEtcdServicePrefix); empty = library default")
	ttl := flag.Int("ttl", 0, "lease TTL in seconds (sets KITEX_ETCD_REGISTRY_LEASE_TTL); 0 = library default")
	count := flag.Int("count", 1, "number of instances (one registry each)")
	flag.Parse()
	if *endpoints == "" || *service == "" || *addr == "" || *count < 1 {
		flag.Usage()
		os.Exit(2)
	}
	klog.SetOutput(os.Stderr)
	klog.SetLevel(klog.LevelWarn)
	if *ttl > 0 {
		os.Setenv("KITEX_ETCD_REGISTRY_LEASE_TTL", strconv.Itoa(*ttl))
	}
	tags, err := jsonl.ParseTags(*tagsFlag)
	if err != nil {
		jsonl.Fatal("--tags: %v", err)
	}
	host, portStr, err := net.SplitHostPort(*addr)
	if err != nil {
		jsonl.Fatal("--addr: %v", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		jsonl.Fatal("--addr port: %v", err)
	}
	var opts []etcd.Option
	if *prefix != "" {
		opts = append(opts, etcd.WithEtcdServicePrefix(*prefix))
	}

	// Registering is the only thing this program does; stop on a signal that
	// comes while it is still registering too.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	type entry struct {
		reg  registry.Registry
		info *registry.Info
	}
	entries := make([]entry, 0, *count)
	started := time.Now()
	for i := 0; i < *count; i++ {
		r, err := etcd.NewEtcdRegistry(jsonl.SplitList(*endpoints), opts...)
		if err != nil {
			jsonl.Fatal("new registry: %v", err)
		}
		a := net.JoinHostPort(host, strconv.Itoa(port+i))
		info := &registry.Info{
			ServiceName: *service,
			Addr:        utils.NewNetAddr("tcp", a),
			Weight:      *weight,
			Tags:        tags,
		}
		if err := r.Register(info); err != nil {
			jsonl.Fatal("register %s: %v", a, err)
		}
		entries = append(entries, entry{r, info})
		if *count <= 10 {
			jsonl.Emit("registered", map[string]any{"service": *service, "addr": a})
		}
	}
	jsonl.Emit("ready", map[string]any{"count": len(entries), "seconds": time.Since(started).Seconds()})

	sig := <-sigs
	failed := 0
	for _, e := range entries {
		if err := e.reg.Deregister(e.info); err != nil {
			failed++
			jsonl.Emit("error", map[string]any{"error": "deregister " + e.info.Addr.String() + ": " + err.Error()})
		}
	}
	jsonl.Emit("deregistered", map[string]any{"count": len(entries) - failed, "signal": sig.String()})
	jsonl.Emit("stopped", nil)
}
