# Developer entry points. `make test` is what CI runs (see .ci/run).
#   make install  create .venv (if missing) and install everything into it
#   make test     install, then lint (ruff.toml) and run the test suite (per-family sweeps in
#                 their short form: see tests/conftest.py)
#   make test-full the same with every per-family sweep (--full; about 10 more minutes)
#   make demo     install, then run tools/demo.sh (data, training, evaluation);
#                 DEMO_CONFIG=configs/demo/cvt13_upernet_demo.py picks another demo
#   make demo-det install, then run tools/demo_det.sh (detection: data, training, box/mask mAP)
#   make demo-cls install, then run tools/demo_cls.sh (classification with mmpretrain: data, training,
#                 top-1 accuracy); DEMO_CLS_SEG=1 then also trains the segmentation demo with its
#                 backbone initialised from that classifier (work_dirs/demo_cls_init)
#   make clean    remove build outputs and caches; keeps .venv but forgets that
#                 it was installed, so the next target re-checks it
PYTHON ?= python3
DEMO_CONFIG ?=
DEMO_CLS_SEG ?=
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-full demo demo-det demo-cls clean distclean

install: $(STAMP)

$(STAMP): setup.py tools/install.sh
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	PYTHON=$(VPY) bash tools/install.sh
	touch $@

test: install
	$(VPY) -m ruff check .
	$(VPY) -m pytest tests -q -p no:cacheprovider

test-full: install
	$(VPY) -m ruff check .
	$(VPY) -m pytest tests -q -p no:cacheprovider --full

demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHON=$(CURDIR)/$(VPY) bash tools/demo.sh $(DEMO_CONFIG)

demo-det: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHON=$(CURDIR)/$(VPY) bash tools/demo_det.sh

demo-cls: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHON=$(CURDIR)/$(VPY) bash tools/demo_cls.sh $(if $(DEMO_CLS_SEG),--seg)

clean:
	rm -rf build dist *.egg-info .pytest_cache vit_backbones/.mim $(STAMP)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
