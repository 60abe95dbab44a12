// Package deploy holds checks for the deployment artifacts at the repository
// root: docker-compose.yml, the Dockerfile it builds, and the Temporal
// configuration under this folder.
//
// The tests load docker-compose.yml with the Compose Specification's
// reference loader, so a typo, a dangling depends_on or a mis-wired
// environment variable fails `go test` instead of `docker compose up`. They
// need neither Docker nor network access.
package deploy
