package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/privalytics/privalytics/api/client"
	"github.com/privalytics/privalytics/api/wire"
)

// exampleServer stands in for a Privalytics server so that the examples run
// as tests; against a real one, pass its URL and a key to client.New.
func exampleServer() *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/queries", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"group_by":["channel"],"aggregates":[{"name":"customers","op":"distinct_customers","mechanism":"laplace","epsilon":0.5,"delta":0,"lower":0,"upper":0}],
			"rows":[{"key":["web"],"cells":[{"value":1041,"lower":1035,"upper":1047}]},{"key":["store"],"cells":[{"value":498,"lower":492,"upper":504}]}],
			"confidence":0.95,"cost":{"epsilon":0.5,"delta":0},"thresholded":false,"cached":false,
			"budget":{"tenant_id":"shop","total":{"epsilon":10,"delta":1e-5},"spent":{"epsilon":0.5,"delta":0},"remaining":{"epsilon":9.5,"delta":1e-5},"allocated":{"epsilon":0,"delta":0}}}`)
	})
	mux.HandleFunc("POST /v1/queries:explain", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"cost":{"epsilon":0.5,"delta":0},"confidence":0.95,"thresholded":false,
			"aggregates":[{"name":"customers","op":"distinct_customers","mechanism":"laplace","epsilon":0.5,"delta":0,"lower":0,"upper":0,"half_width":5.99}]}`)
	})
	busy := true
	mux.HandleFunc("GET /v1/budget", func(w http.ResponseWriter, r *http.Request) {
		if busy { // the first call finds the server rate-limiting the key
			busy = false
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"code":"rate_limited","message":"retry after 0 s"}}`)
			return
		}
		io.WriteString(w, `{"tenant_id":"shop","total":{"epsilon":10,"delta":1e-5},"spent":{"epsilon":0.5,"delta":0},"remaining":{"epsilon":9.5,"delta":1e-5},"allocated":{"epsilon":0,"delta":0},"key":{"key_id":"k1","shared":true,"total":{"epsilon":10,"delta":1e-5},"spent":{"epsilon":0.5,"delta":0},"remaining":{"epsilon":9.5,"delta":1e-5}}}`)
	})
	return httptest.NewServer(mux)
}

// Ask how many distinct customers each channel has, spending ε = 0.5.
func ExampleClient_Query() {
	srv := exampleServer()
	defer srv.Close()
	c := client.New(srv.URL, "pvk_…query key…")

	res, err := c.Query(context.Background(), &wire.Query{
		GroupBy:    []wire.GroupKey{{Column: "channel"}},
		Aggregates: []wire.Aggregate{{Name: "customers", Op: "distinct_customers"}},
		Bounds:     wire.Bounds{MaxGroups: 3},
		Epsilon:    0.5,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, row := range res.Rows {
		cell := row.Cells[0]
		fmt.Printf("%-5s %4.0f  [%.0f, %.0f]\n", row.Key[0], cell.Value, cell.Lower, cell.Upper)
	}
	fmt.Printf("spent ε=%g, %g left\n", res.Cost.Epsilon, res.Budget.Remaining.Epsilon)
	// Output:
	// web   1041  [1035, 1047]
	// store  498  [492, 504]
	// spent ε=0.5, 9.5 left
}

// Before spending anything, ask what a query would cost and how wide its
// intervals would be.
func ExampleClient_Explain() {
	srv := exampleServer()
	defer srv.Close()
	c := client.New(srv.URL, "pvk_…query key…")

	ex, err := c.Explain(context.Background(), &wire.Query{
		GroupBy:    []wire.GroupKey{{Column: "channel"}},
		Aggregates: []wire.Aggregate{{Name: "customers", Op: "distinct_customers"}},
		Epsilon:    0.5,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("would cost ε=%g; %s ±%.1f at %.0f%%\n", ex.Cost.Epsilon, ex.Aggregates[0].Name, ex.Aggregates[0].HalfWidth, ex.Confidence*100)
	// Output:
	// would cost ε=0.5; customers ±6.0 at 95%
}

// A 429 or 503 is retried after the server's Retry-After; WithRetry tunes
// how often and how long.
func ExampleWithRetry() {
	srv := exampleServer()
	defer srv.Close()
	c := client.New(srv.URL, "pvk_…query key…", client.WithRetry(client.Retry{Attempts: 3, Base: 100 * time.Millisecond, Max: 10 * time.Second}))

	b, err := c.Budget(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("ε %.1f of %.0f left\n", b.Remaining.Epsilon, b.Total.Epsilon)
	// Output:
	// ε 9.5 of 10 left
}
