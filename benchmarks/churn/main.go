// Command kitex-churn changes bench pods at a steady rate and says when the API
// server answered each change, so that the Python benchmark can time the key's
// change in etcd against it.
//
// It exists because a Python generator cost about as much CPU as the API server
// itself: on a 2-core machine the two together could not reach 200 changes/s.
// Here a change costs a few hundred microseconds of CPU, and responses come
// back as protobuf.
//
// Every tenth change deletes a pod (it starts terminating: its key must go);
// the others flip a pod's Ready and ContainersReady conditions through the
// status subresource. Output, in JSON lines: {"event": "start"} as the first
// change goes out; {"event": "sent", "wall": s, "errors": n, "cpu": s} once all
// are answered (cpu: its own CPU time meanwhile); then, after every
// flipped pod is Ready again for the next scenario, one line per change
// ({"key": "<etcd key>|PUT or DELETE", "sent": unix time the request went
// out, "t": unix time of the answer}) and {"event": "done"}.
//
// The change happens in the API server somewhere between "sent" and "t": a
// loaded API server may deliver its watch event, and the operator may write
// etcd, before the client has read the answer.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"kitexchurn/kubeclient"
)

type record struct {
	Key  string  `json:"key"`
	Sent float64 `json:"sent"`
	T    float64 `json:"t"`
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	namespace := flag.String("namespace", "", "namespace of the bench pods")
	selector := flag.String("selector", "app=bench", "label selector of the bench pods")
	rate := flag.Float64("rate", 200, "changes per second")
	events := flag.Int("events", 2000, "changes in all")
	workers := flag.Int("workers", 48, "changes in flight at most")
	keyPrefix := flag.String("key-prefix", "", "etcd key of an instance without ip:port, e.g. kitex/bench/")
	registryPrefix := flag.String("registry-prefix", "", "instead of --key-prefix: <this>/<the pod's "+
		"kitex.cloudwego.io/service annotation>/ip:port, for pods of many services")
	port := flag.Int("port", 8888, "the instances' port")
	maxFlip := flag.Int("max-flip", 2000, "pods whose readiness flips, at most")
	flag.Parse()

	client := kubeclient.New(*kubeconfig) // pacing is ours, not client-go's
	ctx := context.Background()
	list, err := client.CoreV1().Pods(*namespace).List(ctx, metav1.ListOptions{LabelSelector: *selector})
	if err != nil {
		kubeclient.Fail("list: %v", err)
	}
	var pods []corev1.Pod
	for _, pod := range list.Items {
		if pod.Status.PodIP != "" && pod.DeletionTimestamp == nil {
			pods = append(pods, pod)
		}
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	deletes := *events / 10
	if len(pods) <= deletes {
		kubeclient.Fail("%d pods with an IP, %d deletions asked", len(pods), deletes)
	}
	deletable := pods[len(pods)-deletes:]
	flippable := pods[:len(pods)-deletes]
	if len(flippable) > *maxFlip {
		flippable = flippable[:*maxFlip]
	}
	key := func(pod corev1.Pod, kind string) string {
		prefix := *keyPrefix
		if *registryPrefix != "" {
			prefix = *registryPrefix + "/" + pod.Annotations["kitex.cloudwego.io/service"] + "/"
		}
		return fmt.Sprintf("%s%s:%d|%s", prefix, pod.Status.PodIP, *port, kind)
	}

	change := func(i int) (string, error) {
		if i%10 == 9 {
			pod := deletable[i/10]
			return key(pod, "DELETE"), client.CoreV1().Pods(*namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{})
		}
		n := i - i/10
		pod := flippable[n%len(flippable)]
		ready := (n/len(flippable))%2 == 1
		status := "False"
		kind := "DELETE"
		if ready {
			status, kind = "True", "PUT"
		}
		now := time.Now().UTC().Format(time.RFC3339)
		patch := fmt.Sprintf(`{"status":{"conditions":[`+
			`{"type":"Ready","status":%q,"lastTransitionTime":%q},`+
			`{"type":"ContainersReady","status":%q,"lastTransitionTime":%q}]}}`,
			status, now, status, now)
		_, err := client.CoreV1().Pods(*namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType,
			[]byte(patch), metav1.PatchOptions{}, "status")
		return key(pod, kind), err
	}

	records := make([]record, *events)
	errs := 0
	var mu sync.Mutex
	work := make(chan int, *events)
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				sent := time.Now()
				k, err := change(i)
				t := time.Now()
				if err != nil {
					mu.Lock()
					errs++
					mu.Unlock()
					fmt.Fprintf(os.Stderr, "change %d: %v\n", i, err)
					continue
				}
				records[i] = record{Key: k, Sent: unix(sent), T: unix(t)}
			}
		}()
	}
	out := json.NewEncoder(os.Stdout)
	_ = out.Encode(map[string]any{"event": "start"})
	cpuBefore := kubeclient.CPUSeconds()
	interval := time.Duration(float64(time.Second) / *rate)
	start := time.Now()
	for i := 0; i < *events; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		work <- i
	}
	close(work)
	wg.Wait()
	wall := time.Since(start).Seconds()
	cpu := kubeclient.CPUSeconds() - cpuBefore
	_ = out.Encode(map[string]any{"event": "sent", "wall": wall, "errors": errs, "cpu": cpu})
	restore(client, *namespace, flippable, *workers)
	for _, r := range records {
		if r.Key != "" {
			_ = out.Encode(r)
		}
	}
	_ = out.Encode(map[string]any{"event": "done"})
}

// restore makes every flipped pod Ready again, workers at a time.
func restore(client *kubernetes.Clientset, namespace string, pods []corev1.Pod, workers int) {
	patch := []byte(`{"status":{"conditions":[{"type":"Ready","status":"True"},` +
		`{"type":"ContainersReady","status":"True"}]}}`)
	work := make(chan string, len(pods))
	for _, pod := range pods {
		work <- pod.Name
	}
	close(work)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				_, err := client.CoreV1().Pods(namespace).Patch(context.Background(), name,
					types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
				if err != nil {
					fmt.Fprintf(os.Stderr, "restore %s: %v\n", name, err)
				}
			}
		}()
	}
	wg.Wait()
}
