// hertz-resolve prints what hertz-contrib/registry's etcd resolver returns for
// a service (keys under the fixed prefix hertz/registry-etcd).
//
//	hertz-resolve --etcd http://127.0.0.1:2379 --service echo
//
// Output: one line like resolve's; Hertz's resolver answers an empty list
// (ok, no instances) where Kitex's answers an error.
package main

import (
	"context"
	"flag"
	"os"
	"reflect"
	"time"

	"github.com/cloudwego/hertz/pkg/app/client/discovery"
	"github.com/cloudwego/hertz/pkg/common/hlog"
	etcd "github.com/hertz-contrib/registry/etcd"

	"kitexinterop/internal/jsonl"
)

// hertzTags reads the tags a Hertz instance holds. Hertz's Instance only
// answers Tag(key), so its unexported map is read by reflection (read only;
// a nil map stays nil, printed as null).
func hertzTags(ins discovery.Instance) map[string]string {
	v := reflect.ValueOf(ins)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	f := v.FieldByName("tags")
	if !f.IsValid() || f.Kind() != reflect.Map || f.IsNil() {
		return nil
	}
	tags := make(map[string]string, f.Len())
	iter := f.MapRange()
	for iter.Next() {
		tags[iter.Key().String()] = iter.Value().String()
	}
	return tags
}

func main() {
	endpoints := flag.String("etcd", "", "comma-separated etcd endpoints")
	service := flag.String("service", "", "service name")
	timeout := flag.Duration("timeout", 5*time.Second, "resolve timeout")
	flag.Parse()
	if *endpoints == "" || *service == "" {
		flag.Usage()
		os.Exit(2)
	}
	hlog.SetOutput(os.Stderr)

	r, err := etcd.NewEtcdResolver(jsonl.SplitList(*endpoints))
	if err != nil {
		jsonl.Fatal("new resolver: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := r.Resolve(ctx, r.Target(ctx, &discovery.TargetInfo{Host: *service}))
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
		"cache_key": res.CacheKey,
		"instances": instances,
	})
}

func describe(ins discovery.Instance) map[string]any {
	return map[string]any{
		"network": ins.Address().Network(),
		"address": ins.Address().String(),
		"weight":  ins.Weight(),
		"tags":    hertzTags(ins),
	}
}
