#!/usr/bin/env bash
# One GPU check (issue 10 item 7, issue 16): install the cuda12 extra, then run benchmarks/gpu_check.py,
# which prints ONE JSON object (also written to $OUT/gpu_check.json when $OUT is set): bench train
# fp32/bf16 at the SPEC default with the fraction of the GPU's dense peak, NSP training and sampling,
# a 256² generate, a short train-vqvae with its loss curve, rollout vs solver. About 8 minutes on one
# H100/H200, install included.
#
#   bash benchmarks/gpu_check.sh          # on the GPU machine
#   bash benchmarks/gpu_check.sh --dry    # tiny sizes on the CPU, existing environment (a smoke test)
#
# Environment: PYTHON (use this interpreter, install nothing), VENV (default .venv-gpu, made with the
# system's packages visible, so a machine whose Python already has a CUDA JAX can run without a
# registry), WHEELS (a folder of wheels installed first with --no-index, for a machine without one),
# WORK (scratch folder, default gpu_check_work), BUDGET_S (seconds for everything, install included,
# default 470, 3600 with --dry: the stages get what the install left).
set -uo pipefail
cd "$(dirname "$0")/.."
dry=()
if [[ "${1:-}" == "--dry" ]]; then dry=(--dry); fi
WORK=${WORK:-gpu_check_work}
mkdir -p "$WORK"
install=skipped
default_budget=470

if [[ ${#dry[@]} -gt 0 ]]; then
    PYTHON=${PYTHON:-python}
    default_budget=3600
elif [[ -z "${PYTHON:-}" ]]; then
    VENV=${VENV:-.venv-gpu}
    [[ -x "$VENV/bin/python" ]] || python3 -m venv --system-site-packages "$VENV"
    PYTHON=$VENV/bin/python
    install=ok
    if [[ -n "${WHEELS:-}" ]]; then
        timeout 120 "$PYTHON" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl \
            >"$WORK/install.log" 2>&1 || install="wheels from $WHEELS failed"
    fi
    # No registry reachable: the stages run from src/ with what the venv already sees.
    timeout 180 "$PYTHON" -m pip install -q --retries 2 --timeout 20 -e '.[cuda12]' >>"$WORK/install.log" 2>&1 ||
        install="pip install -e .[cuda12] failed (see $WORK/install.log): running from src/"
    echo "gpu_check: install: $install" >&2
fi
budget=$((${BUDGET_S:-$default_budget} - SECONDS))

out_args=()
if [[ -n "${OUT:-}" ]]; then out_args=(--output "$OUT/gpu_check.json"); fi
exec "$PYTHON" benchmarks/gpu_check.py "${dry[@]}" --work "$WORK" --budget_s "$budget" \
    --install "$install" "${out_args[@]}"
