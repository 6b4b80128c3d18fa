// Package check holds the offline checks of everything the repository
// ships besides Go code: the Dockerfile, docker-compose.yml, the Helm chart
// under charts/stockquote and the Jenkinsfile. It is a nested module so the
// heavy test-only dependencies (the Helm SDK, k8s.io/api, compose-go,
// BuildKit) stay out of the services' own go.mod.
//
// Everything runs without a container engine, a cluster or the network:
//
//	cd deploy/check && go test ./...
package check
