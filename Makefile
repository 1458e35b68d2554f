# codeserver-service. `make help` lists the targets.
CARGO ?= cargo
# NB: k8s/04-deployment.yaml runs this tag; tests/k8s_consistency.rs keeps them in step.
PKG_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
IMAGE ?= codeserver-service:$(PKG_VERSION)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BUILD_TIME ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
RENDER_ARGS ?= --user john.doe --email john.doe@devplatform.local --repo-owner devteam --repo-name backend-api

.PHONY: help build test browser lint fmt run render validate-templates plan demo sim bench docker-build k8s-deploy k8s-templates

# NB: the developer tools (demo, render, plan, sim) run debug builds, which share their
# compiled dependencies with `make test`; `build` and `run` are optimised.
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## Build the release binary
	$(CARGO) build --release --locked

test: lint browser ## Format check, clippy with warnings as errors, and every test
	$(CARGO) test --workspace --locked

# NB: the browser tests drive Debian's Chromium through ChromeDriver (WebDriver); a fresh
# machine gets both from the distribution's packages.
browser: ## Install Chromium and ChromeDriver for the browser tests (Debian packages)
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
	  echo "chromium and chromedriver are installed"; \
	else \
	  SUDO=$$(command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	fi

lint: ## cargo fmt --check and clippy -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --locked --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

run: ## Serve the API (needs GITEA_URL, GITEA_TOKEN and a cluster from KUBECONFIG)
	$(CARGO) run --release --locked -- serve

render: ## Print the manifests for an example user (no cluster needed)
	$(CARGO) run --locked -- render $(RENDER_ARGS)

validate-templates: ## Render templates/ for sample and hostile users; report every problem
	$(CARGO) run --locked -- validate-templates --templates templates

plan: ## Show what would change in the cluster from KUBECONFIG for the example user
	$(CARGO) run --locked -- plan $(RENDER_ARGS)

demo: ## Everything on 127.0.0.1: simulated cluster, Gitea, token issuer and the server
	$(CARGO) run --locked -p codeserver-demo -- demo

sim: ## Serve the simulated Kubernetes API and write ./sim.kubeconfig
	$(CARGO) run --locked -p codeserver-demo -- sim --kubeconfig-out sim.kubeconfig

bench: ## Benchmarks (render, simulated cluster, reconciler, API)
	$(CARGO) bench --workspace --locked

docker-build: ## Build the container image (needs a Docker engine)
	docker build --build-arg BUILD_VERSION=$(VERSION) --build-arg BUILD_TIME=$(BUILD_TIME) -t $(IMAGE) .

k8s-templates: ## Regenerate k8s/09-templates-configmap.yaml from templates/
	UPDATE_TEMPLATES_CONFIGMAP=1 $(CARGO) test --locked --test k8s_templates

k8s-deploy: ## Apply k8s/ to the cluster of the current kubectl context
	kubectl apply -f k8s/
