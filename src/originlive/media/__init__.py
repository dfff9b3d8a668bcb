"""Live video: the RTMP ingest, ffmpeg, HLS playback, recordings and media-server hooks."""
