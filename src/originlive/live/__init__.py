"""Live sessions and their rooms: chat, likes, pinned offers, moderation and replay."""
