"""The app's work, as plain functions of a Selection: no Gradio in here."""
