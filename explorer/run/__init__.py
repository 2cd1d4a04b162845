"""The Run tab: timed forward passes (`runner`) and what the page shows of them (`views`)."""
