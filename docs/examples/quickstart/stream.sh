# In a second terminal, in the same directory, while the server runs.
.venv/bin/pip install openai
.venv/bin/python docs/examples/quickstart/stream.py
