"""The Train tab: requests and previews (`requests`), child-process runs (`jobs`), views."""
