// echo-client is a Kitex client that finds its servers only through
// kitex-contrib/registry-etcd's resolver (client.WithResolver(etcd.NewEtcdResolver(...)))
// and calls Echo repeatedly.
//
//	echo-client --etcd ENDPOINTS --service NAME [--prefix P] [--calls N] [--interval D]
//	    [--duration D] [--timeout D] [--lb random|roundrobin]
//
// It stops after --calls calls or --duration, whichever comes first (0 = no
// limit), or on SIGTERM/SIGINT. The Kitex client refreshes the resolved list
// every 5 s, as in production.
// Output: "start", then one "call" line per call {seq, ok, server, addr,
// latency_ms | error}, then "summary" {calls, ok, errors, by_server}.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/pkg/endpoint"
	"github.com/cloudwego/kitex/pkg/klog"
	"github.com/cloudwego/kitex/pkg/loadbalance"
	"github.com/cloudwego/kitex/pkg/rpcinfo"
	etcd "github.com/kitex-contrib/registry-etcd"

	"kitexinterop/internal/jsonl"
	"kitexinterop/kitex_gen/echo"
	echoservice "kitexinterop/kitex_gen/echo/echo"
)

type peerKey struct{}

// recordPeer stores the address the call went to, once Kitex has picked it.
func recordPeer(next endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, req, resp interface{}) error {
		err := next(ctx, req, resp)
		if p, ok := ctx.Value(peerKey{}).(*string); ok {
			if ri := rpcinfo.GetRPCInfo(ctx); ri != nil && ri.To() != nil && ri.To().Address() != nil {
				*p = ri.To().Address().String()
			}
		}
		return err
	}
}

func main() {
	endpoints := flag.String("etcd", "", "comma-separated etcd endpoints")
	service := flag.String("service", "", "service name")
	prefix := flag.String("prefix", "", "key prefix (registry-etcd's WithEtcdServicePrefix); empty = library default")
	calls := flag.Int("calls", 0, "number of calls; 0 = until --duration or a signal")
	interval := flag.Duration("interval", 100*time.Millisecond, "pause between calls")
	duration := flag.Duration("duration", 0, "stop after this long; 0 = no limit")
	timeout := flag.Duration("timeout", time.Second, "RPC timeout per call")
	lb := flag.String("lb", "random", "load balancer: random (Kitex's default, weighted random) or roundrobin (weighted round robin)")
	flag.Parse()
	if *endpoints == "" || *service == "" {
		flag.Usage()
		os.Exit(2)
	}
	klog.SetOutput(os.Stderr)
	klog.SetLevel(klog.LevelWarn)

	var ropts []etcd.Option
	if *prefix != "" {
		ropts = append(ropts, etcd.WithEtcdServicePrefix(*prefix))
	}
	r, err := etcd.NewEtcdResolver(jsonl.SplitList(*endpoints), ropts...)
	if err != nil {
		jsonl.Fatal("new resolver: %v", err)
	}
	copts := []client.Option{
		client.WithResolver(r),
		client.WithRPCTimeout(*timeout),
		client.WithMiddleware(recordPeer),
	}
	switch *lb {
	case "random":
	case "roundrobin":
		copts = append(copts, client.WithLoadBalancer(loadbalance.NewWeightedRoundRobinBalancer()))
	default:
		jsonl.Fatal("--lb: unknown balancer %q", *lb)
	}
	cli, err := echoservice.NewClient(*service, copts...)
	if err != nil {
		jsonl.Fatal("new client: %v", err)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	var deadline <-chan time.Time
	if *duration > 0 {
		deadline = time.After(*duration)
	}
	jsonl.Emit("start", map[string]any{"service": *service})

	okCount, errCount := 0, 0
	byServer := map[string]int{}
	seq := 0
loop:
	for *calls == 0 || seq < *calls {
		seq++
		var peer string
		ctx := context.WithValue(context.Background(), peerKey{}, &peer)
		started := time.Now()
		resp, err := cli.Echo(ctx, &echo.EchoRequest{Message: "ping"})
		fields := map[string]any{
			"seq":        seq,
			"ok":         err == nil,
			"addr":       peer,
			"latency_ms": float64(time.Since(started).Microseconds()) / 1000,
		}
		if err != nil {
			errCount++
			fields["error"] = err.Error()
		} else {
			okCount++
			byServer[resp.ServerId]++
			fields["server"] = resp.ServerId
		}
		jsonl.Emit("call", fields)
		if *calls != 0 && seq >= *calls {
			break
		}
		select {
		case <-sigs:
			break loop
		case <-deadline:
			break loop
		case <-time.After(*interval):
		}
	}
	jsonl.Emit("summary", map[string]any{
		"calls":     seq,
		"ok":        okCount,
		"errors":    errCount,
		"by_server": byServer,
	})
}
