// Package jsonl writes the programs' output: one JSON object per line on
// stdout, so the Python wrapper can parse it. Logs of Kitex, Hertz and the
// etcd client go to stderr and never mix with it.
package jsonl

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

var mu sync.Mutex

// Emit writes one line {"event": event, "time": ..., fields...}.
func Emit(event string, fields map[string]any) {
	line := make(map[string]any, len(fields)+3)
	for k, v := range fields {
		line[k] = v
	}
	now := time.Now()
	line["event"] = event
	line["time"] = now.UTC().Format(time.RFC3339Nano)
	line["unix_ns"] = now.UnixNano()
	b, err := json.Marshal(line)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"event": "error", "error": "marshal: " + err.Error()})
	}
	mu.Lock()
	defer mu.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

// Fatal emits an "error" line and exits with status 1.
func Fatal(format string, args ...any) {
	Emit("error", map[string]any{"error": fmt.Sprintf(format, args...)})
	os.Exit(1)
}

// SplitList splits a comma-separated flag value, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// ParseTags parses "k=v,k2=v2". An empty string gives nil (no tags), as a
// Kitex server without tags has.
func ParseTags(s string) (map[string]string, error) {
	items := SplitList(s)
	if len(items) == 0 {
		return nil, nil
	}
	tags := make(map[string]string, len(items))
	for _, item := range items {
		k, v, ok := strings.Cut(item, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("tag %q is not k=v", item)
		}
		tags[k] = v
	}
	return tags, nil
}
