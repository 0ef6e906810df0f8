"""Pieces shared by the Streamlit pages: the process-wide runtime and formatting."""
