"""Long-running processes of their own (CDC relay, archive) and the files they share with the stack and the app."""
