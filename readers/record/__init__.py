"""Recording a serial reader's raw bytes, and replaying them through the live reader's codecs."""
