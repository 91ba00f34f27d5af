"""Motion representations the LLM reads besides the rendered body (open question 1)."""
