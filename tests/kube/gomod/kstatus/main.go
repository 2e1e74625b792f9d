// Prints the kstatus verdict (the library Flux and kubectl tooling use) for each object read
// from stdin as `kubectl get -o json` output: one "NAME STATUS MESSAGE" line per object.
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// The unstructured decoder keeps integers as int64, as kstatus expects of live objects.
	list := &unstructured.UnstructuredList{}
	if err := list.UnmarshalJSON(data); err != nil || len(list.Items) == 0 {
		object := &unstructured.Unstructured{}
		if err := object.UnmarshalJSON(data); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		list.Items = []unstructured.Unstructured{*object}
	}
	for i := range list.Items {
		u := &list.Items[i]
		result, err := status.Compute(u)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%s %s %s\n", u.GetName(), result.Status, result.Message)
	}
}
