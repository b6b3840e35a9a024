# Write fake claude, codex and gemini executables into ./fakebin,
# then start the server with them first on its PATH.
.venv/bin/python -m clinvk.testing.fake_cli install fakebin
PATH="$PWD/fakebin:$PATH" .venv/bin/clinvk serve
