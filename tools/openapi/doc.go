// Package openapi checks that api/openapi.yaml is usable by a real client
// generator: oapi-codegen turns it into Go types and a client, and the result
// must compile and vet. It is a module of its own so the generator's
// dependencies never enter the product's go.mod.
//
// Run it with: cd tools/openapi && go test ./... -count=1
package openapi
