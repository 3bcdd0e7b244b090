"""How clients reach the server: MCP tools, HTTP app and its guards, CLI, output schemas."""
