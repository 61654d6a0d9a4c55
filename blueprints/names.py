"""Function names: the public contract of the app (the HTTP route and the status API use them)."""

BACKUP_ORCHESTRATOR = "E2_BackupSiteContent"
GET_FILE_LIST = "E2_GetFileList"
COPY_FILE_TO_BLOB = "E2_CopyFileToBlob"
COUNT_FILES = "E2_CountFiles"
STAGE_FILE_SEGMENT = "E2_StageFileSegment"
COMMIT_FILE_SEGMENTS = "E2_CommitFileSegments"
FINISH_BACKUP = "E2_FinishBackup"
