// Command example runs the whole authorization flow from Go against a running leyr-broker:
// begin -> open the authorize page (as JSON) -> POST its approve form to the shim -> wait ->
// CallLeyr GET /api/emrs/athenapractice/care-units; then reads the broker's ErrorInfo reason
// from a failed call. Exits non-zero on any failure.
//
// Offline, from Debian's packages only (GOPATH mode; the stubs come from scripts/gen-stubs.sh):
//
//	scripts/gen-stubs.sh build/stubs
//	GO111MODULE=off GOPATH=$PWD/build/stubs/go:/usr/share/gocode go run client/go/main.go
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	brokerv1 "leyr/broker/v1"
)

// ErrorReason returns the broker's google.rpc.ErrorInfo reason of a failed call ("" if none).
func ErrorReason(err error) string {
	for _, detail := range status.Convert(err).Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// approveInBrowser does what the clinician's browser does: loads the consent page and submits
// its "approve" form to the shim, without following the shim's 303.
func approveInBrowser(authorizeURI string) (int, error) {
	req, err := http.NewRequest("GET", authorizeURI, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	httpClient := &http.Client{
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	var page struct {
		Action  string            `json:"action"`
		Approve map[string]string `json:"approve"`
	}
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("authorize page: %v", err)
	}
	form := url.Values{}
	for k, v := range page.Approve {
		form.Set(k, v)
	}
	answer, err := httpClient.PostForm(page.Action, form)
	if err != nil {
		return 0, err
	}
	answer.Body.Close()
	if answer.StatusCode != http.StatusOK && answer.StatusCode != http.StatusSeeOther {
		return answer.StatusCode, fmt.Errorf("the shim answered HTTP %d", answer.StatusCode)
	}
	return answer.StatusCode, nil
}

func run(target, connection string) error {
	conn, err := grpc.Dial(target, grpc.WithInsecure()) // grpc-go 1.33: no credentials/insecure
	if err != nil {
		return err
	}
	defer conn.Close()
	broker := brokerv1.NewBrokerServiceClient(conn)
	call := func(d time.Duration) (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), d)
	}

	ctx, cancel := call(10 * time.Second)
	begun, err := broker.BeginAuthorization(ctx, &brokerv1.BeginAuthorizationRequest{Connection: connection})
	cancel()
	if err != nil {
		return err
	}
	name := begun.GetAuthorization().GetName()
	fmt.Println("begin:", name)

	code, err := approveInBrowser(begun.GetAuthorizeUri())
	if err != nil {
		return err
	}
	fmt.Println("shim answered HTTP", code)

	// Long poll in 30-second slices until the authorization leaves PENDING.
	authorization := begun.GetAuthorization()
	for authorization.GetState() == brokerv1.Authorization_STATE_PENDING {
		ctx, cancel := call(40 * time.Second)
		waited, err := broker.WaitAuthorization(ctx, &brokerv1.WaitAuthorizationRequest{
			Name: name, Timeout: durationpb.New(30 * time.Second)})
		cancel()
		if err != nil {
			return err
		}
		authorization = waited.GetAuthorization()
	}
	fmt.Println("wait:", authorization.GetState())
	if authorization.GetState() != brokerv1.Authorization_STATE_ACTIVE {
		return fmt.Errorf("authorization ended %v", authorization.GetState())
	}

	ctx, cancel = call(30 * time.Second)
	response, err := broker.CallLeyr(ctx, &brokerv1.CallLeyrRequest{
		Authorization: name, Method: "GET", Path: "/api/emrs/athenapractice/care-units"})
	cancel()
	if err != nil {
		return err
	}
	fmt.Println("CallLeyr: HTTP", response.GetStatusCode())
	if response.GetStatusCode() != 200 {
		return fmt.Errorf("Leyr answered HTTP %d", response.GetStatusCode())
	}
	body := response.GetBody()
	if len(body) > 400 {
		body = body[:400]
	}
	fmt.Println(string(body))

	// Errors: match on the ErrorInfo reason, not on the message.
	ctx, cancel = call(10 * time.Second)
	_, err = broker.GetAuthorization(ctx, &brokerv1.GetAuthorizationRequest{
		Name: "authorizations/AAAAAAAAAAAAAAAAAAAAAA"})
	cancel()
	if err == nil {
		return fmt.Errorf("expected NOT_FOUND")
	}
	fmt.Printf("error: %v reason=%s\n", status.Code(err), ErrorReason(err))
	if ErrorReason(err) != "AUTHORIZATION_NOT_FOUND" {
		return fmt.Errorf("unexpected reason %q", ErrorReason(err))
	}
	return nil
}

func main() {
	target, connection := os.Getenv("LEYR_BROKER"), os.Getenv("LEYR_CONNECTION")
	if target == "" {
		target = "127.0.0.1:50051"
	}
	if connection == "" {
		connection = "athena-sandbox"
	}
	if err := run(target, connection); err != nil {
		fmt.Fprintf(os.Stderr, "failed: %v (reason=%s)\n", err, ErrorReason(err))
		os.Exit(1)
	}
	fmt.Println("go example: OK")
}
