"""2D human keypoints: skeleton layouts, the MediaPipe wrapper, person masks."""
