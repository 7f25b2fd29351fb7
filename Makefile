# Two commands set everything up on a fresh machine with Python 3.11:
#   make demo   - create .venv, install, run the simulated day
#   make test   - create .venv, install, run the whole suite
# and, for Terraform: make plan|apply|destroy ENV=dev|prod, make tfcheck (offline checks)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench venv clean plan apply destroy tfcheck tf-env

$(PY):
	@test -n "$(PYTHON)" || { echo "need Python 3.11 (python3.11 or python3 on PATH, or PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m databricks.devtools.demo

test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache   # the layer contracts in .importlinter
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m databricks.devtools.bench

# Terraform, per environment: make plan ENV=dev, make apply ENV=dev, make destroy ENV=dev (prod
# alike; prod's state is remote: backend.hcl). apply applies the plan that make plan saved.
ENV    ?= dev
TFDIR  := terraform/environments/$(ENV)
TF     := terraform -chdir=$(TFDIR)

tf-env:
	@case "$(ENV)" in dev|prod) ;; *) echo "ENV must be dev or prod, e.g. make plan ENV=dev"; exit 2;; esac
	@command -v terraform >/dev/null || { echo "terraform is not installed (https://developer.hashicorp.com/terraform/install)"; exit 2; }
	@test -f $(TFDIR)/terraform.tfvars || { echo "$(TFDIR)/terraform.tfvars is missing: copy terraform.tfvars.example there and fill it in"; exit 2; }
	@test -f $(TFDIR)/users.csv || { echo "$(TFDIR)/users.csv is missing: python -m databricks.main --convert_moodle moodle.csv -o $(TFDIR)/users.csv"; exit 2; }
	@test "$(ENV)" != prod || test -f $(TFDIR)/backend.hcl || { echo "$(TFDIR)/backend.hcl is missing: prod keeps its state remote; copy backend.hcl.example and fill it in"; exit 2; }

plan: tf-env
	$(TF) init -input=false $(if $(filter prod,$(ENV)),-backend-config=backend.hcl)
	$(TF) plan -input=false -out=tfplan

apply: tf-env
	@test -f $(TFDIR)/tfplan || { echo "no saved plan: run make plan ENV=$(ENV) first, and read it"; exit 2; }
	$(TF) apply -input=false tfplan
	rm -f $(TFDIR)/tfplan

destroy: tf-env
	$(TF) init -input=false $(if $(filter prod,$(ENV)),-backend-config=backend.hcl)
	$(TF) destroy -input=true

# The offline checks of the module and both environments (needs ../shared/tfcheck): fmt, validate, test.
tfcheck:
	@cfg="$$(../shared/tfcheck/setup.sh)" && export TF_CLI_CONFIG_FILE="$$cfg" && \
	terraform -chdir=terraform fmt -check -recursive && \
	terraform -chdir=terraform/modules/lab test && \
	for e in dev prod; do terraform -chdir=terraform/environments/$$e get >/dev/null && \
	  terraform -chdir=terraform/environments/$$e validate && terraform -chdir=terraform/environments/$$e test || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache demo-output
