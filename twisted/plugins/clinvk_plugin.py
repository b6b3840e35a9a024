from twisted.application.service import ServiceMaker

clinvkServiceMaker = ServiceMaker(
    "clinvk",
    "clinvk.tap",
    "Serve the Claude Code, Codex and Gemini CLIs as one HTTP API.",
    "clinvk",
)
