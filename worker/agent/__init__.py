"""The LangGraph agent and its tools."""
