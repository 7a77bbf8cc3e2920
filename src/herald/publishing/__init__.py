"""Publishing: deliver a post to channels, exactly once, with retries and live status."""
