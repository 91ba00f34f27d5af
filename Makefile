# The two commands of the README, from a fresh clone:
#   make book   venv, pinned dependencies, packaged assets, every notebook (cpu profile), HTML book
#   make test   the same set-up, then the unit tests and nbval over the smoke-profile notebooks
# Both are idempotent: a second run reinstalls nothing and re-executes only what changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= cpu
PYTEST_ARGS ?=
# the installed state is keyed by the lock file and the project metadata
INSTALLED := $(VENV)/.installed-$(shell cat requirements/lock.txt pyproject.toml | sha256sum | cut -c1-12)

.PHONY: all install fetch book test nbval-refs clean mmpose

all: book

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): $(BIN)/python requirements/lock.txt pyproject.toml
	@echo "installing pinned dependencies into $(VENV) (torch 2.13.0 CPU first)"
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

install: $(INSTALLED)

fetch: install
	$(BIN)/macm data fetch

book: fetch
	$(BIN)/macm reproduce --profile $(PROFILE)

test: fetch
	$(BIN)/python -m pytest tests --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg $(PYTEST_ARGS)

# re-create the nbval references after a deliberate change to a notebook's output
nbval-refs: fetch
	$(BIN)/macm reproduce --profile smoke --output tests/notebooks --no-book --force

clean:
	rm -rf _build book/executed book/_static/plotly.min.js

# Optional: the mmpose backend on this CPU machine (about 20 min: mmcv's ops are compiled
# from source), for mmpose's own top-down configs (HRNet, ResNet) and mmdet person
# detectors.  Its ViTPose configs need mmpretrain, which imports torchvision: GPU nodes
# install the CUDA builds of all of them with `mim` instead.
mmpose: install
	$(BIN)/python -m pip install --quiet "setuptools<81" wheel ninja cython "numpy<2.4" \
		json_tricks munkres opencv-python-headless pillow mmengine six \
		terminaltables shapely
	MMCV_WITH_OPS=1 $(BIN)/python -m pip install --no-build-isolation "mmcv==2.1.0"
	# from source against this numpy: the xtcocotools wheel is built for numpy >= 2.4's ABI
	$(BIN)/python -m pip install --quiet --no-build-isolation --no-binary xtcocotools "xtcocotools==1.14.3"
	$(BIN)/python -m pip install --quiet --no-deps "mmdet==3.3.0" "mmpose==1.3.2"
	# mmpose imports torchvision at the top of one visualisation module; torchvision does
	# not import beside this torch build, and the backend never needs that module (patched
	# once: a second run of this target leaves the file as it is)
	$(BIN)/python -c "import pathlib, mmpose; p = pathlib.Path(mmpose.__file__).parent / 'visualization' / 'simcc_vis.py'; \
		s = p.read_text(); 'ToPILImage = None' in s or p.write_text(s.replace('from torchvision.transforms import ToPILImage', \
		'try:\n    from torchvision.transforms import ToPILImage\nexcept Exception:  # optional\n    ToPILImage = None'))"
	$(BIN)/python -m pytest -q tests/test_mmpose_backend.py
