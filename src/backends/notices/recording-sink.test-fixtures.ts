import type { ChangeNotice, ChangeNoticeSink, NoticeRejection } from '../change-notice.port.ts';

/** A change-notice sink for the sources' unit tests: records what it was told. */
export class RecordingSink implements ChangeNoticeSink {
  readonly notices: ChangeNotice[] = [];
  readonly rejections: NoticeRejection[] = [];
  ignoredCount = 0;
  readonly ups: boolean[] = [];
  notice(_source: string, notice: ChangeNotice): void {
    this.notices.push(notice);
  }
  ignored(): void {
    this.ignoredCount++;
  }
  rejected(_source: string, why: NoticeRejection): void {
    this.rejections.push(why);
  }
  up(_source: string, up: boolean): void {
    this.ups.push(up);
  }
  /** Every line or event the source handled, whatever became of it. */
  get seen(): number {
    return this.notices.length + this.rejections.length + this.ignoredCount;
  }
}
