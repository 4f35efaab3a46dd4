// resolve prints what kitex-contrib/registry-etcd's resolver returns for a
// service, exactly as the Kitex client would receive it.
//
//	resolve --etcd http://127.0.0.1:2379 --service echo [--prefix P] [--default-weight W]
//
// Output: one line {"event":"resolve","ok":true,"cacheable":..,"cache_key":..,
// "instances":[{"network","address","weight","tags"}]} or
// {"event":"resolve","ok":false,"error":"..."}; exit status 0 either way
// (an error is a result), 2 on bad flags.
package main

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/cloudwego/kitex/pkg/discovery"
	"github.com/cloudwego/kitex/pkg/klog"
	etcd "github.com/kitex-contrib/registry-etcd"

	"kitexinterop/internal/jsonl"
)

type tagged interface{ Tags() map[string]string }

func main() {
	endpoints := flag.String("etcd", "", "comma-separated etcd endpoints")
	service := flag.String("service", "", "service name")
	prefix := flag.String("prefix", "", "key prefix (registry-etcd's WithEtcdServicePrefix); empty = library default")
	defaultWeight := flag.Int("default-weight", 0, "resolver's WithDefaultWeight; 0 = library default")
	timeout := flag.Duration("timeout", 5*time.Second, "resolve timeout")
	flag.Parse()
	if *endpoints == "" || *service == "" {
		flag.Usage()
		os.Exit(2)
	}
	klog.SetOutput(os.Stderr)

	var opts []etcd.Option
	if *prefix != "" {
		opts = append(opts, etcd.WithEtcdServicePrefix(*prefix))
	}
	if *defaultWeight != 0 {
		opts = append(opts, etcd.WithDefaultWeight(*defaultWeight))
	}
	opts = append(opts, etcd.WithDialTimeoutOpt(*timeout))
	r, err := etcd.NewEtcdResolver(jsonl.SplitList(*endpoints), opts...)
	if err != nil {
		jsonl.Fatal("new resolver: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := r.Resolve(ctx, *service)
	if err != nil {
		jsonl.Emit("resolve", map[string]any{"ok": false, "error": err.Error()})
		return
	}
	instances := make([]map[string]any, 0, len(res.Instances))
	for _, ins := range res.Instances {
		instances = append(instances, describe(ins))
	}
	jsonl.Emit("resolve", map[string]any{
		"ok":        true,
		"cacheable": res.Cacheable,
		"cache_key": res.CacheKey,
		"instances": instances,
	})
}

func describe(ins discovery.Instance) map[string]any {
	var tags map[string]string
	if t, ok := ins.(tagged); ok {
		tags = t.Tags()
	}
	return map[string]any{
		"network": ins.Address().Network(),
		"address": ins.Address().String(),
		"weight":  ins.Weight(),
		"tags":    tags,
	}
}
