// Command kitex-pods writes and reads the large benchmark's pods with client-go.
//
//	kitex-pods create --kubeconfig K --namespace NS [--first F] --count N --services S
//	kitex-pods list --kubeconfig K [--namespace NS] [--page 500] [--json]
//
// create makes N annotated pods, service svc-<i mod S>, spread over the kwok
// nodes, W requests in flight: a Python client in threads spends more CPU than
// the API server it feeds, and 100,000 pods through it took too long on
// 2 cores. It prints {"created": n, "errors": n, "seconds": s}.
//
// list is the yardstick of the operator's initial sync: the fastest a
// program can read every pod, protobuf and pages of 500 like client-go's
// informers, decoding each page into typed objects and dropping it. It prints
// {"pods": n, "ready": n, "keys": distinct service/IP of the ready ones, "seconds": s,
// "cpu": s}; seconds and cpu cover the list alone. With --json it asks for
// JSON, what the operator reads: the difference is the API server's encoding.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kitexchurn/kubeclient"
)

func main() {
	if len(os.Args) < 2 {
		kubeclient.Fail("usage: kitex-pods create|list [flags]")
	}
	flags := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	kubeconfig := flags.String("kubeconfig", "", "kubeconfig of the cluster")
	namespace := flags.String("namespace", "", "namespace (list: empty for all)")
	count := flags.Int("count", 1000, "create: pods to create")
	first := flags.Int("first", 0, "create: number of the first pod (p<first>, ...)")
	services := flags.Int("services", 1, "create: Kitex services they are spread over")
	workers := flags.Int("workers", 64, "create: requests in flight")
	page := flags.Int64("page", 500, "list: pods per page")
	asJSON := flags.Bool("json", false, "list: ask for JSON, as the operator does (default protobuf)")
	_ = flags.Parse(os.Args[2:])
	client := kubeclient.NewAs(*kubeconfig, *asJSON)
	var result map[string]any
	switch os.Args[1] {
	case "create":
		result = create(client, *namespace, *first, *count, *services, *workers)
	case "list":
		result = list(client, *namespace, *page)
	default:
		kubeclient.Fail("unknown command %q", os.Args[1])
	}
	_ = json.NewEncoder(os.Stdout).Encode(result)
}

func create(client *kubernetes.Clientset, namespace string, first, count, services, workers int) map[string]any {
	ctx := context.Background()
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=kwok"})
	if err != nil || len(nodes.Items) == 0 {
		kubeclient.Fail("kwok nodes: %v (%d found)", err, len(nodes.Items))
	}
	work := make(chan int, workers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := 0
	started := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{
						Name:   fmt.Sprintf("p%d", i),
						Labels: map[string]string{"app": "bench-large"},
						Annotations: map[string]string{
							"kitex.cloudwego.io/service": fmt.Sprintf("svc-%04d", i%services),
							"kitex.cloudwego.io/port":    "8888",
						},
					},
					Spec: corev1.PodSpec{
						NodeName:   nodes.Items[i%len(nodes.Items)].Name,
						Containers: []corev1.Container{{Name: "c", Image: "bench/kitex"}},
					},
				}
				if _, err := client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
					mu.Lock()
					errs++
					mu.Unlock()
					fmt.Fprintf(os.Stderr, "create %d: %v\n", i, err)
				}
			}
		}()
	}
	for i := first; i < first+count; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	return map[string]any{"created": count - errs, "errors": errs,
		"seconds": time.Since(started).Seconds()}
}

func list(client *kubernetes.Clientset, namespace string, page int64) map[string]any {
	cpu := kubeclient.CPUSeconds()
	started := time.Now()
	pods, ready := 0, 0
	instances := map[string]struct{}{} // service/ip of ready pods: the keys the operator writes
	token := ""
	for {
		items, err := client.CoreV1().Pods(namespace).List(context.Background(),
			metav1.ListOptions{Limit: page, Continue: token})
		if err != nil {
			kubeclient.Fail("list: %v", err)
		}
		for _, pod := range items.Items {
			pods++
			for _, c := range pod.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready++
					if service := pod.Annotations["kitex.cloudwego.io/service"]; service != "" && pod.Status.PodIP != "" {
						instances[service+"/"+pod.Status.PodIP] = struct{}{}
					}
				}
			}
		}
		if token = items.Continue; token == "" {
			break
		}
	}
	seconds := time.Since(started).Seconds()
	return map[string]any{"pods": pods, "ready": ready, "keys": len(instances),
		"seconds": seconds, "cpu": kubeclient.CPUSeconds() - cpu}
}
